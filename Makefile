# Build, install and test spiped (Rust).
#   make                   build (as yourself: root usually has no Rust toolchain)
#   sudo make install      copy what `make` built; builds nothing
#       [DESTDIR=] [PREFIX=/usr/local] [BINDIR=$(PREFIX)/bin] [MANDIR=$(PREFIX)/share/man]
#   sudo make uninstall    remove exactly what `make install` put (same variables)
#   make deb               a Debian package, target/debian/spiped-rs_*.deb (needs cargo-deb)
#   make static            a static binary (musl), target/x86_64-unknown-linux-musl/release/spiped
#   make test              (installs the Debian packages the tests need when missing)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/spiped
# systemd reads units from /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
# Completions go where each shell looks. bash-completion reads
# $(PREFIX)/share/bash-completion/completions for /usr and /usr/local (XDG_DATA_DIRS);
# its pkg-config file gives the layout for this PREFIX.
# (Debian's names datadir outright, so both are redefined.)
BASHCOMPDIR ?= $(or $(shell pkg-config --define-variable=prefix=$(PREFIX) --define-variable=datadir=$(PREFIX)/share \
	--variable=completionsdir bash-completion 2>/dev/null),$(PREFIX)/share/bash-completion/completions)
# Debian's zsh reads /usr/local/share/zsh/site-functions, and vendor-completions for
# packages under /usr.
ZSHCOMPDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/share/zsh/vendor-completions,$(PREFIX)/share/zsh/site-functions)
# fish reads $(PREFIX)/share/fish/vendor_completions.d when XDG_DATA_DIRS names
# $(PREFIX)/share (desktop sessions set /usr/local/share:/usr/share), and /usr's always.
# A /usr/local install writes nothing under /usr, which belongs to the package manager.
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# The example configurations, as the Debian package has them.
EXAMPLEDIR ?= $(DOCDIR)/examples
CARGO ?= cargo
TARGETDIR ?= $(or $(CARGO_TARGET_DIR),target)
BIN = $(TARGETDIR)/release/spiped

MANPAGES = $(notdir $(wildcard man/*.1))
UNITS = spiped@.service spiped@.socket spiped.service
# Every file `install` puts, so that `uninstall` removes exactly those.
INSTALLED = $(BINDIR)/spiped $(BINDIR)/spipe \
	$(addprefix $(MANDIR)/man1/,$(MANPAGES)) \
	$(BASHCOMPDIR)/spiped $(BASHCOMPDIR)/spipe $(ZSHCOMPDIR)/_spiped $(FISHCOMPDIR)/spiped.fish \
	$(addprefix $(UNITDIR)/,$(UNITS)) $(EXAMPLEDIR)/spiped-example.conf $(EXAMPLEDIR)/spiped.toml
# The directories `install` puts files in. Those it had to create (parents included) are
# listed in DIRLIST, deepest first, and kept there across installs, so that `uninstall`
# removes them when empty, and never one that was there before.
INSTALLDIRS = $(BINDIR) $(MANDIR)/man1 $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(UNITDIR) $(DOCDIR) \
	$(EXAMPLEDIR)
DIRLIST = $(DOCDIR)/installed-directories

.PHONY: all install uninstall deb static test deps lint leftovers

all:
	@command -v $(CARGO) >/dev/null || { echo "$(CARGO) not found: install Rust with rustup (see README.md) and run make as that user, not root" >&2; exit 1; }
	$(CARGO) build --release --locked

# Copies only: `sudo make install` must not need root to have a Rust toolchain.
install:
	@test -x $(BIN) || { echo "$(BIN) is not built: run make first (as yourself), then make install" >&2; exit 1; }
	@new=; for d in $(INSTALLDIRS); do \
		while [ "$$d" != / ] && [ ! -d "$(DESTDIR)$$d" ]; do new="$$new $$d"; d=$$(dirname "$$d"); done; \
	done; \
	install -d $(addprefix $(DESTDIR),$(INSTALLDIRS)) && \
	{ cat $(DESTDIR)$(DIRLIST) 2>/dev/null; printf '%s\n' $$new; } | sed '/^$$/d' | sort -ru \
		> $(DESTDIR)$(DIRLIST).new && mv $(DESTDIR)$(DIRLIST).new $(DESTDIR)$(DIRLIST)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BINDIR)/spipe
	install -m 0644 $(addprefix man/,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 completions/spiped.bash $(DESTDIR)$(BASHCOMPDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BASHCOMPDIR)/spipe
	install -m 0644 completions/_spiped $(DESTDIR)$(ZSHCOMPDIR)/_spiped
	install -m 0644 completions/spiped.fish $(DESTDIR)$(FISHCOMPDIR)/spiped.fish
	# The units name /usr/bin/spiped (the Debian package's path): point them at this one.
	for u in $(UNITS); do \
		sed 's|/usr/bin/spiped|$(BINDIR)/spiped|g' contrib/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	# Examples only: an operator's /etc/spiped/spiped.toml is never touched.
	install -m 0644 contrib/systemd/spiped-example.conf contrib/spiped.toml $(DESTDIR)$(EXAMPLEDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -f $(DESTDIR)$(DIRLIST) ]; then \
		dirs=$$(cat $(DESTDIR)$(DIRLIST)); rm -f $(DESTDIR)$(DIRLIST); \
		for d in $$dirs; do rmdir "$(DESTDIR)$$d" 2>/dev/null || true; done; \
	fi

# The package replaces Debian's C spiped: see [package.metadata.deb] in Cargo.toml.
deb: all
	@$(CARGO) deb --version >/dev/null 2>&1 || { echo "cargo-deb is missing: cargo install --locked cargo-deb" >&2; exit 1; }
	$(CARGO) deb --no-build --locked

# A static binary for containers and old distributions: Rust's musl target carries its
# own C library and start files, so the result loads nothing at run time (ldd checks).
# Debian's musl-tools compiles the allocator it uses instead of musl's (mimalloc, in C).
STATIC_TARGET = x86_64-unknown-linux-musl
STATIC_BIN = $(TARGETDIR)/$(STATIC_TARGET)/release/spiped
static:
	@command -v musl-gcc >/dev/null || { echo "musl-gcc not found: apt-get install musl-tools" >&2; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx $(STATIC_TARGET) || rustup target add $(STATIC_TARGET)
	$(CARGO) build --release --locked --target $(STATIC_TARGET)
	@ldd $(STATIC_BIN) 2>&1 | grep -Eq 'statically linked|not a dynamic executable' || \
		{ echo "$(STATIC_BIN) has dynamic dependencies: $$(ldd $(STATIC_BIN) 2>&1)" >&2; exit 1; }
	@echo "static binary: $(STATIC_BIN) (no dynamic dependencies)"

# Debian's C spiped 1.6.2 is the judge of wire compatibility: the interop tests run against it.
# mandoc lints the man pages; bash, zsh and fish load the completion scripts; script
# (bsdutils) gives keygen a terminal to refuse; strace holds a bind open while a test plants a
# symlink. The packaging tests use make, pkg-config,
# bash-completion, lintian and systemd-analyze (systemd), and run the README's quick
# start (python3, curl, and unshare from util-linux for a private loopback). prometheus ships
# promtool, which checks the metrics endpoint's scrape, and the server the end-to-end
# scrape test runs.
TEST_PACKAGES = spiped mandoc zsh fish bsdutils make pkgconf bash-completion lintian systemd \
	python3 curl util-linux iproute2 strace prometheus
deps:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing test dependencies:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@$(CARGO) deb --version >/dev/null 2>&1 || { echo "installing cargo-deb"; $(CARGO) install --locked cargo-deb; }

# The second run forces the packet MAC's portable path (the one CPUs without the SHA
# extensions take) through the unit, property and interop tests.
test: deps
	$(CARGO) test --locked --workspace --all-targets
	$(CARGO) test --locked -p spiped-proto --features test-sha-fallback --tests
	$(CARGO) test --locked --features test-sha-fallback --lib --test properties --test interop
	@$(MAKE) --no-print-directory leftovers

# Nothing a test started may outlive the suite. Every process a test starts inherits
# cargo's CARGO_MANIFEST_DIR (this directory, or a workspace member's below it), and no
# process outside a test has it: once the test binaries have exited, any process that
# still has it was left running. Each is named and killed, and the run fails.
LEFTOVER_MARK ?= CARGO_MANIFEST_DIR=$(CURDIR)
leftovers:
	@left=$$(grep -lszxE -- '$(LEFTOVER_MARK)(/.*)?' /proc/[0-9]*/environ | cut -d/ -f3); \
	if [ -n "$$left" ]; then \
		echo "processes a test left running (killed now):" >&2; \
		ps -o pid,ppid,args -p "$$(echo $$left | tr ' ' ,)" >&2; \
		kill -KILL $$left 2>/dev/null; exit 1; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	python3 contrib/layers
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

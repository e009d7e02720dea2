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
# fish reads one vendor directory, the one its pkg-config file names (not one under
# /usr/local), for system-wide installs; a home-directory PREFIX such as ~/.local has its own.
FISHCOMPDIR ?= $(or $(if $(filter /usr /usr/local,$(PREFIX)),$(shell pkg-config --variable=completionsdir fish 2>/dev/null)),$(PREFIX)/share/fish/vendor_completions.d)
CARGO ?= cargo
TARGETDIR ?= $(or $(CARGO_TARGET_DIR),target)
BIN = $(TARGETDIR)/release/spiped

MANPAGES = $(notdir $(wildcard man/*.1))
# Every file `install` puts, so that `uninstall` removes exactly those.
INSTALLED = $(BINDIR)/spiped $(BINDIR)/spipe \
	$(addprefix $(MANDIR)/man1/,$(MANPAGES)) \
	$(BASHCOMPDIR)/spiped $(BASHCOMPDIR)/spipe $(ZSHCOMPDIR)/_spiped $(FISHCOMPDIR)/spiped.fish \
	$(UNITDIR)/spiped@.service $(UNITDIR)/spiped@.socket $(DOCDIR)/spiped-example.conf

.PHONY: all install uninstall deb static test deps lint

all:
	@command -v $(CARGO) >/dev/null || { echo "$(CARGO) not found: install Rust with rustup (see README.md) and run make as that user, not root" >&2; exit 1; }
	$(CARGO) build --release --locked

# Copies only: `sudo make install` must not need root to have a Rust toolchain.
install:
	@test -x $(BIN) || { echo "$(BIN) is not built: run make first (as yourself), then make install" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BINDIR)/spipe
	install -m 0644 $(addprefix man/,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 completions/spiped.bash $(DESTDIR)$(BASHCOMPDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BASHCOMPDIR)/spipe
	install -m 0644 completions/_spiped $(DESTDIR)$(ZSHCOMPDIR)/_spiped
	install -m 0644 completions/spiped.fish $(DESTDIR)$(FISHCOMPDIR)/spiped.fish
	# The units name /usr/bin/spiped (the Debian package's path): point them at this one.
	for u in spiped@.service spiped@.socket; do \
		sed 's|/usr/bin/spiped|$(BINDIR)/spiped|g' contrib/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 contrib/systemd/spiped-example.conf $(DESTDIR)$(DOCDIR)/spiped-example.conf

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

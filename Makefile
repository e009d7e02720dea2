# Build, install and test spiped (Rust). Mirrors the original's `make install` / `make test`.
#   make install [PREFIX=/usr/local] [BINDIR=$(PREFIX)/bin] [MANDIR=$(PREFIX)/share/man]
#   make test    (installs Debian's spiped, the interoperability peer, when missing)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
CARGO ?= cargo

.PHONY: all install test deps lint

all:
	$(CARGO) build --release --locked

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 target/release/spiped $(DESTDIR)$(BINDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BINDIR)/spipe
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 completions/spiped.bash $(DESTDIR)$(BASHCOMPDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BASHCOMPDIR)/spipe
	install -m 0644 completions/_spiped $(DESTDIR)$(ZSHCOMPDIR)/_spiped
	install -m 0644 completions/spiped.fish $(DESTDIR)$(FISHCOMPDIR)/spiped.fish

# Debian's C spiped 1.6.2 is the judge of wire compatibility: the interop tests run against it.
# mandoc lints the man pages; bash, zsh and fish load the completion scripts; script
# (bsdutils) gives keygen a terminal to refuse. prometheus ships promtool, which checks the
# metrics endpoint's scrape, and the server the end-to-end scrape test runs.
TEST_PACKAGES = spiped mandoc zsh fish bsdutils prometheus
deps:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing test dependencies:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: deps
	$(CARGO) test --locked --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

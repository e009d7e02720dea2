# Build, install and test spiped (Rust). Mirrors the original's `make install` / `make test`.
#   make install [PREFIX=/usr/local] [BINDIR=$(PREFIX)/bin] [MANDIR=$(PREFIX)/share/man]
#   make test    (installs Debian's spiped, the interoperability peer, when missing)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
CARGO ?= cargo

.PHONY: all install test deps lint

all:
	$(CARGO) build --release --locked

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 target/release/spiped $(DESTDIR)$(BINDIR)/spiped
	ln -sf spiped $(DESTDIR)$(BINDIR)/spipe
	if ls man/*.1 >/dev/null 2>&1; then \
		install -d $(DESTDIR)$(MANDIR)/man1 && install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/; \
	fi

# Debian's C spiped 1.6.2 is the judge of wire compatibility: the interop tests run against it.
deps:
	@if ! [ -x /usr/bin/spiped ] || ! [ -x /usr/bin/spipe ]; then \
		echo "installing Debian's spiped (the interoperability peer)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spiped; \
	fi

test: deps
	$(CARGO) test --locked --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

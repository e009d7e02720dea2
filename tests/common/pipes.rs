//! The usual arrangements of daemons and a target: a [`Server`] (a `spiped -d` in front
//! of a [`Target`]), an encrypting daemon aimed at one ([`Daemon::encrypting`]), and a
//! [`Chain`] of both, optionally with a proxy on the encrypted hop.

use std::path::Path;

use super::{Addr, Daemon, Impl, Mode, Target, Transport, key_file, temp_dir};

/// A `spiped -d` on a fresh TCP address (`hop`) in front of its own [`Target`]: the
/// server end of a pipe. Field order is drop order: the daemon dies before its target.
pub(crate) struct Server {
    /// The decrypting daemon.
    pub d: Daemon,
    /// The target behind it.
    pub target: Target,
    /// Where the daemon accepts encrypted connections.
    pub hop: Addr,
}

impl Server {
    /// Starts a target in `mode` and `which`'s `spiped -d -s HOP -t TARGET ARGS` in
    /// front of it (`args` holds the `-k` and any other options), files in `dir`.
    pub(crate) fn start(which: Impl, dir: &Path, label: &str, mode: Mode, args: &[&str]) -> Server {
        let tcp = (Transport::Tcp, Transport::Tcp);
        Server::start_on(which, dir, label, tcp, mode, args)
    }

    /// [`Server::start`] with the hop and the target on sockets of the given kinds (UNIX
    /// sockets in `dir`).
    pub(crate) fn start_on(
        which: Impl,
        dir: &Path,
        label: &str,
        (hop, target): (Transport, Transport),
        mode: Mode,
        args: &[&str],
    ) -> Server {
        let target = Target::start(target, dir, mode);
        let hop = Addr::fresh(hop, dir, label);
        let (hop_arg, target_arg) = (hop.arg(), target.addr.arg());
        let mut all = vec!["-d", "-s", &hop_arg, "-t", &target_arg];
        all.extend_from_slice(args);
        let d = Daemon::spawn(which, label, dir, &hop, &all);
        Server { d, target, hop }
    }
}

impl Daemon {
    /// `which`'s `spiped -e ARGS` on a fresh TCP address (its `source`) to `to` with the
    /// key file `key`, as [`Daemon::pipe`] starts it: a client of the server at `to`.
    pub(crate) fn encrypting(
        which: Impl,
        label: &str,
        dir: &Path,
        to: &str,
        key: &str,
        args: &[&str],
    ) -> Daemon {
        let source = Addr::fresh(Transport::Tcp, dir, label);
        let args = [&["-e"][..], args].concat();
        Daemon::pipe(which, label, dir, &source, to, key, &args)
    }
}

/// The key file contents of every [`Chain`], for tests that watch its packets.
pub(crate) const CHAIN_KEY: &[u8] = b"key file of a test chain of daemons";

/// A `spiped -d` in front of a target and a `spiped -e` in front of that, both in the
/// foreground on TCP, sharing one key: the usual pair for fault and load tests.
pub(crate) struct Chain {
    _dir: tempfile::TempDir,
    /// The target behind `dec`.
    pub target: Target,
    /// The `-d`, in front of `target`.
    pub dec: Daemon,
    /// The `-e`, in front of `dec`: clients connect to its `source`.
    pub enc: Daemon,
}

impl Chain {
    /// Starts the pair with `enc`/`dec` playing the two daemons and extra arguments for
    /// each. With `proxy`, the encrypted hop goes through it: `proxy(dec's address)`
    /// must return the address `-e` connects to.
    pub(crate) fn start(
        (enc, enc_extra): (Impl, &[&str]),
        (dec, dec_extra): (Impl, &[&str]),
        mode: Mode,
        proxy: Option<&dyn Fn(&Addr) -> Addr>,
    ) -> Chain {
        let dir = temp_dir();
        let key = key_file(dir.path(), "key", CHAIN_KEY);
        let key = key.to_str().unwrap();
        let dec_args = [&["-k", key][..], dec_extra].concat();
        let Server {
            d: dec,
            target,
            hop,
        } = Server::start(dec, dir.path(), "dec", mode, &dec_args);
        let hop = proxy.map_or(hop.clone(), |p| p(&hop));
        let enc = Daemon::encrypting(enc, "enc", dir.path(), &hop.arg(), key, enc_extra);
        Chain {
            _dir: dir,
            target,
            dec,
            enc,
        }
    }
}

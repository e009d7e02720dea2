//! [`Chain`]: the usual pair for fault and load tests, a `spiped -e` in front of a
//! `spiped -d` in front of a [`Target`], optionally with a proxy on the encrypted hop.

use super::{Addr, Daemon, Impl, Mode, Target, Transport, key_file, temp_dir};

/// The key file contents of every [`Chain`], for tests that watch its packets.
pub const CHAIN_KEY: &[u8] = b"key file of a test chain of daemons";

/// A `spiped -d` in front of a target and a `spiped -e` in front of that, both in the
/// foreground on TCP, sharing one key: the usual pair for fault and load tests.
pub struct Chain {
    _dir: tempfile::TempDir,
    pub target: Target,
    pub dec: Daemon,
    pub enc: Daemon,
}

impl Chain {
    /// Starts the pair with `enc`/`dec` playing the two daemons and extra arguments for
    /// each. With `proxy`, the encrypted hop goes through it: `proxy(dec's address)`
    /// must return the address `-e` connects to.
    pub fn start(
        (enc, enc_extra): (Impl, &[&str]),
        (dec, dec_extra): (Impl, &[&str]),
        mode: Mode,
        proxy: Option<&dyn Fn(&Addr) -> Addr>,
    ) -> Chain {
        let dir = temp_dir();
        let key = key_file(dir.path(), "key", CHAIN_KEY);
        let key = key.to_str().unwrap();
        let target = Target::start(Transport::Tcp, dir.path(), mode);
        let dsrc = Addr::fresh(Transport::Tcp, dir.path(), "d");
        let (ds, dt) = (dsrc.arg(), target.addr.arg());
        let mut args = vec!["-d", "-s", &ds, "-t", &dt, "-k", key];
        args.extend_from_slice(dec_extra);
        let dec = Daemon::spawn(dec, "dec", dir.path(), &dsrc, &args);
        let hop = proxy.map_or(dsrc.clone(), |p| p(&dsrc));
        let esrc = Addr::fresh(Transport::Tcp, dir.path(), "e");
        let (es, et) = (esrc.arg(), hop.arg());
        let mut args = vec!["-e", "-s", &es, "-t", &et, "-k", key];
        args.extend_from_slice(enc_extra);
        let enc = Daemon::spawn(enc, "enc", dir.path(), &esrc, &args);
        Chain {
            _dir: dir,
            target,
            dec,
            enc,
        }
    }
}

//! Name resolution a test controls: a private /etc/hosts and /etc/resolv.conf for a
//! `spiped` run in its own mount namespace (root, as in CI).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Impl, in_mount_ns, spiped_bin};

/// A mount namespace's view of name resolution: `hosts` as /etc/hosts, and a
/// resolv.conf naming a DNS server that is not there (127.0.0.1:53 refuses), so only
/// the hosts file answers and failures are immediate.
pub(crate) struct Names {
    /// The file mounted over /etc/hosts.
    pub hosts: PathBuf,
    /// The file mounted over /etc/resolv.conf.
    pub resolv: PathBuf,
}

impl Names {
    /// Names resolved from `hosts`, files kept in `dir`.
    pub(crate) fn new(dir: &Path, hosts: &str) -> Names {
        let n = Names {
            hosts: dir.join("hosts"),
            resolv: dir.join("resolv.conf"),
        };
        fs::write(&n.resolv, "nameserver 127.0.0.1\n").unwrap();
        n.set_hosts(hosts);
        n
    }

    /// Rewrites the hosts file in place: the bind mount follows the inode.
    pub(crate) fn set_hosts(&self, text: &str) {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .create(true)
            .open(&self.hosts)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Our `spiped`, run in a mount namespace that sees these files; add its arguments.
    pub(crate) fn spiped(&self) -> Command {
        in_mount_ns(
            &[
                (&self.hosts, "/etc/hosts"),
                (&self.resolv, "/etc/resolv.conf"),
            ],
            &spiped_bin(Impl::Ours),
        )
    }
}

//! PROXY protocol headers (HAProxy's PROXY protocol, versions 1 and 2), sans-IO.
//!
//! `spiped -e --proxy v1|v2` sends one of these through the tunnel as the first
//! plaintext bytes of a connection, so the service behind `spiped -d` (nginx, HAProxy,
//! Postfix, Dovecot) learns the address of the client that really connected instead of
//! the `spiped -d` host's. Only the encoding lives here; nothing touches a socket.
//!
//! Per the specification: TCP over IPv4 and IPv6 carry both addresses and ports; a
//! UNIX-socket source is `UNKNOWN` in version 1 (which has no UNIX family) and
//! `AF_UNIX` with both paths in version 2; when the two ends are not of one kind,
//! version 1 says `UNKNOWN` and version 2 sends a `LOCAL` header, which every receiver
//! accepts and then uses the connection's own addresses.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;

use spiped_transports::Endpoint;

/// Which version of the PROXY protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The human-readable text header, `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header, starting with a 12-byte signature.
    V2,
}

impl FromStr for Version {
    type Err = UnknownVersion;

    /// Parses `v1` or `v2` (also `1`, `2`).
    fn from_str(s: &str) -> Result<Version, UnknownVersion> {
        match s {
            "v1" | "1" => Ok(Version::V1),
            "v2" | "2" => Ok(Version::V2),
            _ => Err(UnknownVersion(s.to_owned())),
        }
    }
}

/// A `--proxy` value that names no version (the value).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownVersion(String);

impl std::fmt::Display for UnknownVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = &self.0;
        write!(
            f,
            "invalid value '{v}' for --proxy: expected v1 (text) or v2 (binary)"
        )
    }
}

impl std::error::Error for UnknownVersion {}

/// The 12 bytes every version 2 header starts with.
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Size of `sun_path` in a version 2 `AF_UNIX` address block; paths are NUL-padded.
const UNIX_PATH_LEN: usize = 108;

/// The header announcing a connection from `source` (the client) to `destination` (the
/// address it connected to), in `version`.
pub(crate) fn header(version: Version, source: &Endpoint, destination: &Endpoint) -> Vec<u8> {
    match version {
        Version::V1 => v1(source, destination).into_bytes(),
        Version::V2 => v2(source, destination),
    }
}

/// Both ends as IP socket addresses of one family, mapping IPv4 into IPv6 when only
/// one end is IPv4; `None` unless both are TCP.
fn ip_pair(source: &Endpoint, destination: &Endpoint) -> Option<(SocketAddr, SocketAddr)> {
    let (Endpoint::Tcp(s), Endpoint::Tcp(d)) = (source, destination) else {
        return None;
    };
    let v6 = |a: &SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => *a,
    };
    Some(match (s, d) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => (*s, *d),
        _ => (v6(s), v6(d)),
    })
}

fn v1(source: &Endpoint, destination: &Endpoint) -> String {
    match ip_pair(source, destination) {
        Some((s, d)) => {
            let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            )
        }
        None => "PROXY UNKNOWN\r\n".to_owned(),
    }
}

fn v2(source: &Endpoint, destination: &Endpoint) -> Vec<u8> {
    // Version 2 in the high nibble; command PROXY (1) or LOCAL (0) in the low one.
    const PROXY: u8 = 0x21;
    const LOCAL: u8 = 0x20;
    let (command, family, addresses): (u8, u8, Vec<u8>) = match (source, destination) {
        (Endpoint::Unix(s), Endpoint::Unix(d)) => {
            let mut block = vec![0u8; 2 * UNIX_PATH_LEN];
            for (slot, path) in block.chunks_exact_mut(UNIX_PATH_LEN).zip([s, d]) {
                let bytes = path.as_os_str().as_bytes();
                // The kernel's own limit on a path is sun_path's size, so this never
                // cuts anything a socket can have.
                let n = bytes.len().min(UNIX_PATH_LEN);
                slot[..n].copy_from_slice(&bytes[..n]);
            }
            (PROXY, 0x31, block)
        }
        _ => match ip_pair(source, destination) {
            Some((SocketAddr::V4(s), SocketAddr::V4(d))) => {
                let block = [
                    &s.ip().octets()[..],
                    &d.ip().octets()[..],
                    &s.port().to_be_bytes()[..],
                    &d.port().to_be_bytes()[..],
                ]
                .concat();
                (PROXY, 0x11, block)
            }
            Some((s, d)) => {
                let ip6 = |a: &SocketAddr| match a.ip() {
                    IpAddr::V6(ip) => ip,
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                };
                let block = [
                    &ip6(&s).octets()[..],
                    &ip6(&d).octets()[..],
                    &s.port().to_be_bytes()[..],
                    &d.port().to_be_bytes()[..],
                ]
                .concat();
                (PROXY, 0x21, block)
            }
            None => (LOCAL, 0x00, Vec::new()),
        },
    };
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command);
    out.push(family);
    // At most 216 bytes of addresses: always fits the 16-bit length.
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::path::PathBuf;

    fn tcp(s: &str) -> Endpoint {
        Endpoint::Tcp(s.parse().unwrap())
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        assert_eq!(
            header(
                Version::V1,
                &tcp("192.0.2.1:51000"),
                &tcp("198.51.100.7:443")
            ),
            b"PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\n"
        );
        assert_eq!(
            header(Version::V1, &tcp("[2001:db8::1]:5"), &tcp("[::1]:8025")),
            b"PROXY TCP6 2001:db8::1 ::1 5 8025\r\n"
        );
        // Mixed families become TCP6 with the IPv4 end mapped.
        assert_eq!(
            header(Version::V1, &tcp("192.0.2.1:1"), &tcp("[::1]:2")),
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"
        );
    }

    #[test]
    fn v1_unix_is_unknown() {
        let u = Endpoint::Unix(PathBuf::from("/run/s.sock"));
        assert_eq!(header(Version::V1, &u, &u), b"PROXY UNKNOWN\r\n");
        assert_eq!(
            header(Version::V1, &u, &tcp("1.2.3.4:5")),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn v1_longest_header_fits_the_spec_limit() {
        // The specification caps a v1 line at 107 bytes.
        let max = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        assert!(header(Version::V1, &tcp(max), &tcp(max)).len() <= 107);
    }

    #[test]
    fn v2_tcp4() {
        let h = header(
            Version::V2,
            &tcp("192.0.2.1:51000"),
            &tcp("198.51.100.7:443"),
        );
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 7]);
        want.extend_from_slice(&51000u16.to_be_bytes());
        want.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(h, want);
    }

    #[test]
    fn v2_tcp6() {
        let h = header(Version::V2, &tcp("[2001:db8::1]:5"), &tcp("[::1]:8025"));
        assert_eq!(
            &h[..16],
            &[&V2_SIGNATURE[..], &[0x21, 0x21, 0, 36]].concat()[..]
        );
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(&h[16..32], &src.octets());
        assert_eq!(&h[32..48], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(&h[48..], &[0, 5, 0x1f, 0x59]);
    }

    #[test]
    fn v2_unix_carries_both_paths() {
        let peer = Endpoint::Unix(PathBuf::new());
        let local = Endpoint::Unix(PathBuf::from("/run/s.sock"));
        let h = header(Version::V2, &peer, &local);
        assert_eq!(h.len(), 16 + 216);
        assert_eq!(&h[12..16], &[0x21, 0x31, 0, 216]);
        assert!(
            h[16..124].iter().all(|&b| b == 0),
            "unnamed peer: empty path"
        );
        assert_eq!(&h[124..135], b"/run/s.sock");
        assert!(h[135..].iter().all(|&b| b == 0));
    }

    #[test]
    fn v2_mixed_kinds_are_local() {
        let u = Endpoint::Unix(PathBuf::from("/s"));
        let h = header(Version::V2, &u, &tcp("1.2.3.4:5"));
        assert_eq!(h, [&V2_SIGNATURE[..], &[0x20, 0x00, 0, 0]].concat());
    }

    #[test]
    fn version_parses() {
        assert_eq!("v1".parse(), Ok(Version::V1));
        assert_eq!("2".parse(), Ok(Version::V2));
        let e = "v3".parse::<Version>().unwrap_err().to_string();
        assert!(e.contains("--proxy") && e.contains("v3"), "{e}");
    }
}

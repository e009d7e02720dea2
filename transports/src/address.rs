//! The address forms spiped accepts on its command line, parsed without touching the
//! network: `/absolute/path` (UNIX socket), `host.name:port`, `[1.2.3.4]:port` and
//! `[ipv6::addr]:port`. As in C spiped, an IPv6 address may also go without brackets
//! (`::1:8025`): the port is whatever follows the last colon.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// A socket address as written by the user, before any name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A UNIX-domain socket at an absolute path.
    Unix(PathBuf),
    /// A TCP address given as a numeric IP in brackets.
    Ip {
        /// The IP address, v4 or v6.
        ip: IpAddr,
        /// The TCP port.
        port: u16,
    },
    /// A TCP address given as a host name, resolved later (and re-resolved for targets).
    Name {
        /// The host name as written.
        host: String,
        /// The TCP port.
        port: u16,
    },
}

/// Why a string is not an address; the message names the offending text and the forms
/// that are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid address '{}': {} (expected /path/to/socket, host:port, [ip.v4]:port or [ip:v6]:port)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for AddressError {}

impl Address {
    /// Parses a source or target address; a TCP address must carry a port.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        Self::parse_inner(s, false)
    }

    /// Parses a `-b` bind address, where the port may be left out (it is then 0: any
    /// port). A bare `[ip]` or `host` is accepted.
    pub fn parse_bind(s: &str) -> Result<Address, AddressError> {
        Self::parse_inner(s, true)
    }

    fn parse_inner(s: &str, port_optional: bool) -> Result<Address, AddressError> {
        let err = |reason| AddressError {
            input: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let close = rest.find(']').ok_or_else(|| err("missing ']'"))?;
            let ip: IpAddr = rest[..close]
                .parse()
                .map_err(|_| err("not a numeric IPv4 or IPv6 address inside [ ]"))?;
            let after = &rest[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p).map_err(err)?,
                None if after.is_empty() && port_optional => 0,
                None if after.is_empty() => return Err(err("missing ':port'")),
                None => return Err(err("unexpected text after ']'")),
            };
            return Ok(Address::Ip { ip, port });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p).map_err(err)?),
            None if port_optional => (s, 0),
            None => return Err(err("missing ':port' (a UNIX socket path must be absolute)")),
        };
        if host.is_empty() {
            return Err(err("missing host name before ':'"));
        }
        if host.contains(':') {
            // C splits at the last colon too, so `fe80::1:22` is port 22 of fe80::1.
            return match host.parse::<std::net::Ipv6Addr>() {
                Ok(ip) => Ok(Address::Ip {
                    ip: IpAddr::V6(ip),
                    port,
                }),
                Err(_) => Err(err("not a numeric IPv6 address before the last ':port'")),
            };
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(err(
                "host name has characters other than letters, digits, '-', '_' and '.'",
            ));
        }
        // Upstream resolves "1.2.3.4:port" too, through getaddrinfo; keep that working.
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(Address::Ip { ip, port }),
            Err(_) => Ok(Address::Name {
                host: host.to_owned(),
                port,
            }),
        }
    }

    /// True for a UNIX-domain socket path.
    pub fn is_unix(&self) -> bool {
        matches!(self, Address::Unix(_))
    }
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 0 to 65535");
    }
    p.parse::<u16>()
        .map_err(|_| "the port must be a number from 0 to 65535")
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Ip { ip, port } => write!(f, "[{ip}]:{port}"),
            Address::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_four_forms() {
        assert_eq!(
            Address::parse("/tmp/s").unwrap(),
            Address::Unix("/tmp/s".into())
        );
        assert_eq!(
            Address::parse("[127.0.0.1]:8025").unwrap(),
            Address::Ip {
                ip: "127.0.0.1".parse().unwrap(),
                port: 8025
            }
        );
        assert_eq!(
            Address::parse("[::1]:22").unwrap(),
            Address::Ip {
                ip: "::1".parse().unwrap(),
                port: 22
            }
        );
        assert_eq!(
            Address::parse("mail.example.com:25").unwrap(),
            Address::Name {
                host: "mail.example.com".into(),
                port: 25
            }
        );
    }

    #[test]
    fn rejects_bad_forms_with_a_reason() {
        for bad in [
            "",
            "relative/path",
            "host",
            "host:",
            ":25",
            "host:99999",
            "host:2x",
            "[::1]",
            "[::1]25",
            "[nothex]:1",
            "::g:25",
            "a:b:25",
            "bad host:1",
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid address"), "{bad}: {e}");
        }
    }

    #[test]
    fn ipv6_without_brackets_takes_the_port_after_the_last_colon() {
        for (s, ip, port) in [
            ("::1:8025", "::1", 8025),
            ("fe80::1:22", "fe80::1", 22),
            ("2001:db8::5:0", "2001:db8::5", 0),
            ("::ffff:127.0.0.1:9", "::ffff:127.0.0.1", 9),
        ] {
            assert_eq!(
                Address::parse(s).unwrap(),
                Address::Ip {
                    ip: ip.parse().unwrap(),
                    port
                },
                "{s}"
            );
        }
    }

    #[test]
    fn bind_port_is_optional() {
        assert_eq!(
            Address::parse_bind("[127.0.0.1]").unwrap(),
            Address::Ip {
                ip: "127.0.0.1".parse().unwrap(),
                port: 0
            }
        );
        assert_eq!(
            Address::parse_bind("localhost").unwrap(),
            Address::Name {
                host: "localhost".into(),
                port: 0
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["/a/b", "[::1]:5", "[10.0.0.1]:6", "x.y:7"] {
            assert_eq!(Address::parse(s).unwrap().to_string(), s);
        }
    }
}

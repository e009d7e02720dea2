//! Which `Host` a request to the metrics endpoint may name: a guard against DNS
//! rebinding. A web page can make a browser send requests to the endpoint through a
//! name its author controls, resolved to the endpoint's address; the browser then lets
//! the page read the answers, `/status` included (key file paths, targets, peers). Such
//! requests carry that name as their `Host`, so a TCP endpoint answers only requests
//! naming an IP address, `localhost`, or the name the endpoint was given (`--metrics
//! NAME:PORT`).
//!
//! An IP address cannot be rebound (a page served from an IP address has that address
//! as its origin, and a request from another origin cannot read the answer), so any IP
//! address is taken, not only the endpoint's own: behind a port mapping or NAT the
//! scraper names an address the endpoint never sees. The port is not compared for the
//! same reason (`ssh -L`, `kubectl port-forward`, `docker -p` change it) and because it
//! plays no part in rebinding.
//!
//! A UNIX socket endpoint takes any `Host`: no browser can reach a UNIX socket, and
//! whoever can open the socket file can read `/status` anyway.

use std::net::IpAddr;

use hyper::Request;
use hyper::header::HOST;
use hyper::http::uri::Authority;

/// The names requests may give as their `Host`.
#[derive(Debug)]
pub(super) enum Hosts {
    /// Any (a UNIX socket).
    Any,
    /// An IP address, `localhost`, or this name (the one given to `--metrics`).
    Own(Option<String>),
}

/// Why a request's `Host` is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// No `Host` header, or more than one, or one that is not a host.
    Malformed,
    /// A name that is not this endpoint's.
    Elsewhere,
}

impl Hosts {
    /// Whether `req` may be answered: its `Host` header, and the authority of an
    /// absolute request target if it has one, each name this endpoint.
    pub(super) fn check<B>(&self, req: &Request<B>) -> Result<(), Refused> {
        let Hosts::Own(name) = self else {
            return Ok(());
        };
        let mut hosts = req.headers().get_all(HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            return Err(Refused::Malformed);
        };
        let host = Authority::try_from(host.as_bytes()).map_err(|_| Refused::Malformed)?;
        for authority in std::iter::once(&host).chain(req.uri().authority()) {
            // A Host header names a host and port, never a user.
            if authority.as_str().contains('@') {
                return Err(Refused::Malformed);
            }
            if !own(authority.host(), name.as_deref()) {
                return Err(Refused::Elsewhere);
            }
        }
        Ok(())
    }
}

/// Whether `host` (as an authority writes it: `[v6]` in brackets) is an IP address,
/// `localhost` or `name`, names compared as DNS does (case aside, a final dot aside).
fn own(host: &str, name: Option<&str>) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if bare.unwrap_or(host).parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let name = name.map(|n| n.strip_suffix('.').unwrap_or(n));
    [Some("localhost"), name]
        .into_iter()
        .flatten()
        .any(|n| n.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hosts: &Hosts, host: &[&str], target: &str) -> Result<(), Refused> {
        let mut req = Request::get(target);
        for h in host {
            req = req.header(HOST, *h);
        }
        hosts.check(&req.body(()).unwrap())
    }

    #[test]
    fn own_addresses_localhost_and_the_given_name_are_answered() {
        let own = Hosts::Own(Some("Metrics.Example.org".to_owned()));
        for host in [
            "127.0.0.1:9187",
            "127.0.0.1",
            "192.0.2.7:80",
            "[::1]:9187",
            "[::1]",
            "[::ffff:127.0.0.1]:1",
            "localhost",
            "LOCALHOST:9187",
            "localhost.:9187",
            "metrics.example.org:9187",
            "metrics.example.org.",
        ] {
            assert_eq!(check(&own, &[host], "/status"), Ok(()), "{host}");
        }
        let url = "http://127.0.0.1:9187/status";
        assert_eq!(check(&own, &["localhost"], url), Ok(()));
    }

    #[test]
    fn other_names_are_refused() {
        let own = Hosts::Own(None);
        for host in [
            "attacker.example:9187",
            "attacker.example",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "metrics.example.org",
        ] {
            assert_eq!(
                check(&own, &[host], "/status"),
                Err(Refused::Elsewhere),
                "{host}"
            );
        }
        let url = "http://attacker.example/status";
        assert_eq!(check(&own, &["localhost"], url), Err(Refused::Elsewhere));
    }

    #[test]
    fn a_missing_doubled_or_broken_host_is_refused() {
        let own = Hosts::Own(None);
        for host in [
            &[][..],
            &["localhost", "localhost"],
            &["user@localhost"],
            &["a b"],
        ] {
            assert_eq!(
                check(&own, host, "/status"),
                Err(Refused::Malformed),
                "{host:?}"
            );
        }
    }

    #[test]
    fn a_unix_socket_takes_any_host() {
        assert_eq!(check(&Hosts::Any, &[], "/status"), Ok(()));
        assert_eq!(check(&Hosts::Any, &["attacker.example"], "/status"), Ok(()));
    }
}

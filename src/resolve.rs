//! Turning user-given addresses into endpoints, and keeping the target's fresh.
//!
//! Host names go through hickory's resolver on the event loop (its tokio runtime, see
//! [`provider`]), configured from `/etc/resolv.conf` and `/etc/hosts` like the C
//! library's resolver. Both files are read again for every look-up, so edits apply to
//! the next re-resolution.

mod provider;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, Resolver};
use spiped_transports::{Address, Endpoint};

use provider::ConnectedUdp;

use crate::log;

/// How long `-D` waits between attempts to resolve an address that does not resolve yet.
pub(crate) const WAIT_DNS_RETRY: Duration = Duration::from_secs(1);

/// Resolves `addr` into every endpoint it names, in the resolver's order. Errors name
/// the address.
pub(crate) async fn resolve(addr: &Address) -> Result<Vec<Endpoint>, ResolveError> {
    match addr {
        Address::Unix(p) => Ok(vec![Endpoint::Unix(p.clone())]),
        Address::Ip { ip, port } => Ok(vec![Endpoint::Tcp(SocketAddr::new(*ip, *port))]),
        Address::Name { host, port } => {
            let fail = |why| ResolveError::Lookup {
                addr: addr.clone(),
                why,
            };
            let found = lookup(host).await.map_err(fail)?;
            if found.is_empty() {
                return Err(fail(LookupError::NoAddresses));
            }
            Ok(found
                .into_iter()
                .map(|ip| Endpoint::Tcp(SocketAddr::new(ip, *port)))
                .collect())
        }
    }
}

/// Like [`resolve`], but with `wait` (`-D`) never fails: retries every
/// [`WAIT_DNS_RETRY`] until it succeeds, warning once.
pub(crate) async fn resolve_or_wait(
    addr: &Address,
    wait: bool,
) -> Result<Vec<Endpoint>, ResolveError> {
    let mut warned = false;
    loop {
        match resolve(addr).await {
            Ok(v) => return Ok(v),
            Err(e) if !wait => return Err(e),
            Err(e) if !warned => {
                log::warn(&format!("{e}; retrying until it resolves (-D)"));
                warned = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(WAIT_DNS_RETRY).await;
    }
}

/// The addresses of `host` from a resolver built afresh, so that `/etc/hosts` and
/// `/etc/resolv.conf` are read now rather than when the daemon started.
async fn lookup(host: &str) -> Result<Vec<std::net::IpAddr>, LookupError> {
    if let Some(found) = from_hosts(host) {
        return Ok(found);
    }
    let builder = match Resolver::builder(ConnectedUdp::default()) {
        Ok(b) => b,
        // Like the C library without /etc/resolv.conf: still answer from /etc/hosts.
        Err(_) => Resolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
            ConnectedUdp::default(),
        ),
    };
    let resolver = builder
        .build()
        .map_err(|e| LookupError::Resolver(Box::new(e)))?;
    let found = resolver.lookup_ip(host).await.map_err(|e| match e {
        _ if e.is_nx_domain() || e.is_no_records_found() => LookupError::NoSuchHost,
        NetError::NoConnections | NetError::Timeout => LookupError::NoServer,
        e => LookupError::Failed(Box::new(e)),
    })?;
    Ok(found.iter().collect())
}

/// The addresses `/etc/hosts` gives `host`, IPv6 first as the resolver orders them, or
/// `None` when it does not name it. As in the C library ("files" before "dns"), a name
/// the file knows gets its addresses only: the resolver asks per address family, so
/// `127.0.0.1 localhost` alone would also give the `::1` it answers for localhost
/// itself (or a name's IPv6 address from DNS), and `-s` would listen there instead.
fn from_hosts(host: &str) -> Option<Vec<std::net::IpAddr>> {
    let hosts = Hosts::from_system().ok()?;
    let name = Name::from_str(host).ok()?;
    let found: Vec<std::net::IpAddr> = [RecordType::AAAA, RecordType::A]
        .into_iter()
        .filter_map(|family| hosts.lookup_static_host(&Query::query(name.clone(), family)))
        .flat_map(|lookup| {
            (lookup.answers().iter())
                .filter_map(|record| record.data.ip_addr())
                .collect::<Vec<_>>()
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

/// Resolves a `-b` bind address to one IP socket address.
pub(crate) async fn resolve_bind(addr: &Address) -> Result<SocketAddr, ResolveError> {
    bind_address(addr, resolve(addr).await?)
}

/// Picks the address outgoing connections bind to from what `-b` resolved to: the
/// first, with a warning when there were several ([`first`]).
pub(crate) fn bind_address(
    addr: &Address,
    found: Vec<Endpoint>,
) -> Result<SocketAddr, ResolveError> {
    match first(addr, "-b/--bind", found) {
        Some(Endpoint::Tcp(a)) => Ok(a),
        _ => Err(ResolveError::UnixBind { addr: addr.clone() }),
    }
}

/// The first of the endpoints `addr` (given to `option`) resolved to, with a warning
/// naming it when there were several, as C spiped 1.6.3 does for `-s` and `-b`: a
/// socket listens on, or binds to, one address only.
pub(crate) fn first(addr: &Address, option: &str, found: Vec<Endpoint>) -> Option<Endpoint> {
    let n = found.len();
    let first = found.into_iter().next()?;
    if n > 1 {
        log::warn(&format!(
            "warning: {option} {addr}: {n} addresses found; using the first, {first}"
        ));
    }
    Some(first)
}

/// Why an address gave no endpoint; the message names the address.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// Its host name did not resolve.
    Lookup {
        /// The address as the user gave it.
        addr: Address,
        /// Why the look-up failed.
        why: LookupError,
    },
    /// `-b` named a UNIX socket, which outgoing TCP connections cannot bind to.
    UnixBind {
        /// The address as the user gave it.
        addr: Address,
    },
}

/// Why a host name did not resolve.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// Neither `/etc/hosts` nor DNS knows the name.
    NoSuchHost,
    /// No name server answered.
    NoServer,
    /// The look-up succeeded but gave no address.
    NoAddresses,
    /// The resolver could not be set up.
    Resolver(Box<NetError>),
    /// The look-up failed otherwise.
    Failed(Box<NetError>),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Lookup { addr, why } => write!(f, "cannot resolve {addr}: {why}"),
            ResolveError::UnixBind { addr } => write!(
                f,
                "invalid bind address {addr}: -b takes an IP address or host name, not a UNIX socket"
            ),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Lookup { why, .. } => Some(why),
            ResolveError::UnixBind { .. } => None,
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoSuchHost => {
                f.write_str("no such host (not in /etc/hosts, and DNS has no address for it)")
            }
            LookupError::NoServer => {
                f.write_str("no DNS server answered (see the nameserver lines of /etc/resolv.conf)")
            }
            LookupError::NoAddresses => f.write_str("no addresses found"),
            LookupError::Resolver(e) => write!(f, "{e}"),
            LookupError::Failed(e) => write!(f, "DNS look-up failed: {e}"),
        }
    }
}

impl std::error::Error for LookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LookupError::Resolver(e) | LookupError::Failed(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Re-resolves `addr` every `every` (`-r`) until the task running it is stopped,
/// telling `found` each new list; a failure keeps the last good list and warns.
/// Tells `looked_up` whether each look-up succeeded. Returns at once for addresses
/// without a host name, which cannot change.
pub(crate) async fn keep_fresh(
    addr: &Address,
    every: Duration,
    looked_up: impl Fn(bool),
    found: impl Fn(Vec<Endpoint>),
) {
    if !matches!(addr, Address::Name { .. }) {
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        let list = resolve(addr).await;
        looked_up(list.is_ok());
        match list {
            Ok(list) => found(list),
            Err(e) => log::warn(&format!("{e}; still using the previous addresses")),
        }
    }
}

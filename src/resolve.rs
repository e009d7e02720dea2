//! Turning user-given addresses into endpoints, and keeping the target's fresh.
//!
//! Host names go through hickory's resolver on the event loop (its tokio runtime, see
//! [`provider`]),
//! configured from `/etc/resolv.conf` and `/etc/hosts` like the C library's resolver.
//! Both files are read again for every look-up, so edits apply to the next
//! re-resolution.

mod provider;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::ResolverConfig;
use spiped_transports::{Address, Endpoint};

use provider::ConnectedUdp;

use crate::log;

/// How long `-D` waits between attempts to resolve an address that does not resolve yet.
pub const WAIT_DNS_RETRY: Duration = Duration::from_secs(1);

/// Resolves `addr` into every endpoint it names, in the resolver's order. Errors name
/// the address.
pub async fn resolve(addr: &Address) -> Result<Vec<Endpoint>, String> {
    match addr {
        Address::Unix(p) => Ok(vec![Endpoint::Unix(p.clone())]),
        Address::Ip { ip, port } => Ok(vec![Endpoint::Tcp(SocketAddr::new(*ip, *port))]),
        Address::Name { host, port } => {
            let found = lookup(host)
                .await
                .map_err(|e| format!("cannot resolve {addr}: {e}"))?;
            if found.is_empty() {
                return Err(format!("cannot resolve {addr}: no addresses found"));
            }
            Ok(found
                .into_iter()
                .map(|ip| Endpoint::Tcp(SocketAddr::new(ip, *port)))
                .collect())
        }
    }
}

/// Like [`resolve`], but for `-D`: retries every [`WAIT_DNS_RETRY`] until it succeeds,
/// warning once.
pub async fn resolve_patiently(addr: &Address) -> Vec<Endpoint> {
    let mut warned = false;
    loop {
        match resolve(addr).await {
            Ok(v) => return v,
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
async fn lookup(host: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let builder = match Resolver::builder(ConnectedUdp::default()) {
        Ok(b) => b,
        // Like the C library without /etc/resolv.conf: still answer from /etc/hosts.
        Err(_) => Resolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
            ConnectedUdp::default(),
        ),
    };
    let resolver = builder.build().map_err(|e| e.to_string())?;
    let found = resolver.lookup_ip(host).await.map_err(|e| {
        use hickory_resolver::net::NetError;
        match e {
            _ if e.is_nx_domain() || e.is_no_records_found() => {
                "no such host (not in /etc/hosts, and DNS has no address for it)".to_owned()
            }
            NetError::NoConnections | NetError::Timeout => {
                "no DNS server answered (see the nameserver lines of /etc/resolv.conf)".to_owned()
            }
            e => format!("DNS look-up failed: {e}"),
        }
    })?;
    Ok(found.iter().collect())
}

/// Resolves a `-b` bind address to one IP socket address.
pub async fn resolve_bind(addr: &Address) -> Result<SocketAddr, String> {
    bind_address(addr, resolve(addr).await?)
}

/// Picks the address outgoing connections bind to from what `-b` resolved to.
pub fn bind_address(addr: &Address, found: Vec<Endpoint>) -> Result<SocketAddr, String> {
    match found.into_iter().next() {
        Some(Endpoint::Tcp(a)) => Ok(a),
        _ => Err(format!(
            "invalid bind address {addr}: -b takes an IP address or host name, not a UNIX socket"
        )),
    }
}

/// The current addresses of the target, shared by the accept loop and whatever keeps
/// them fresh. New connections read the newest list; open ones are unaffected.
#[derive(Clone)]
pub struct Targets(Arc<RwLock<Arc<Vec<Endpoint>>>>);

impl Targets {
    /// Starts with an already resolved, non-empty list.
    pub fn new(initial: Vec<Endpoint>) -> Targets {
        Targets(Arc::new(RwLock::new(Arc::new(initial))))
    }

    /// The newest list of target endpoints.
    pub fn current(&self) -> Arc<Vec<Endpoint>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the list (after a successful re-resolution).
    pub fn set(&self, list: Vec<Endpoint>) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(list);
    }

    /// Re-resolves `addr` every `every` (`-r`) for as long as anyone else holds this
    /// list (a reload drops a pipe's old lists), replacing it on success; a failure
    /// keeps the last good list and warns. Tells `looked_up` whether each look-up
    /// succeeded. Returns at once for addresses without a host name, which cannot
    /// change.
    pub async fn keep_fresh(self, addr: &Address, every: Duration, looked_up: impl Fn(bool)) {
        if !matches!(addr, Address::Name { .. }) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        drop(self);
        loop {
            tokio::time::sleep(every).await;
            let found = resolve(addr).await;
            let Some(list) = weak.upgrade() else { return };
            looked_up(found.is_ok());
            match found {
                Ok(found) => Targets(list).set(found),
                Err(e) => log::warn(&format!("{e}; still using the previous addresses")),
            }
        }
    }
}

//! Turning user-given addresses into endpoints.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};

use spiped_transports::{Address, Endpoint};

/// Resolves `addr` into every endpoint it names, in the resolver's order.
///
/// Host names go through the system resolver (so `/etc/hosts` applies); this blocks
/// and is meant for start-up and background threads. Errors name the address.
pub fn resolve(addr: &Address) -> Result<Vec<Endpoint>, String> {
    match addr {
        Address::Unix(p) => Ok(vec![Endpoint::Unix(p.clone())]),
        Address::Ip { ip, port } => Ok(vec![Endpoint::Tcp(SocketAddr::new(*ip, *port))]),
        Address::Name { host, port } => {
            let found: io::Result<Vec<SocketAddr>> = (host.as_str(), *port)
                .to_socket_addrs()
                .map(|it| it.collect());
            match found {
                Ok(v) if !v.is_empty() => Ok(v.into_iter().map(Endpoint::Tcp).collect()),
                Ok(_) => Err(format!("cannot resolve {addr}: no addresses found")),
                Err(e) => Err(format!(
                    "cannot resolve {addr}: {}",
                    crate::errors::describe(&e)
                )),
            }
        }
    }
}

/// Resolves a `-b` bind address to one IP socket address.
pub fn resolve_bind(addr: &Address) -> Result<SocketAddr, String> {
    match resolve(addr)?.into_iter().next() {
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
}

//! The metrics endpoint's connections, held within a budget that never turns the newest
//! away. A fixed cap that refuses new connections lets a handful of stalled clients
//! lock out every scrape and health probe; here a new connection is always taken, and
//! when its peer or the endpoint is over budget the oldest connection in that scope is
//! closed instead, one that has not yet sent a complete request head first. A client
//! that sends its request at once (every scraper, every probe) is answered in well
//! under a millisecond, so it is never the oldest for long; stalled ones are.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Connections held at once, from all peers. Each costs a file descriptor, which the
/// pipes need more (a daemon's soft limit is often 1,024), and about 10 KiB (hyper's
/// read buffer, bounded by the request head's limit, and the task). Shedding the oldest
/// keeps a small budget from starving anyone: pushing out a scraper between its
/// connection and its request, microseconds apart, would take more new connections
/// than this from other peers in that time.
pub(super) const MAX_CLIENTS: usize = 64;
/// Connections held at once from one peer (an IPv4 address, an IPv6 /64, or one user
/// of a UNIX socket): one peer over it closes its own oldest, not others'. A scraper, a
/// probe and a few people with curl need far fewer.
pub(super) const MAX_PER_PEER: usize = 16;

/// Whose connection it is, as far as the budget is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Peer {
    /// A TCP client: its IPv4 address, or its IPv6 /64 (one host commonly owns a whole
    /// /64, so counting single IPv6 addresses would cap nobody).
    Ip(IpAddr),
    /// A client of a UNIX socket, by the user id the kernel vouches for (`SO_PEERCRED`),
    /// so that one local user's flood cannot shed another's probe; `None` if the kernel
    /// did not say (all such clients count as one).
    Local(Option<u32>),
}

impl Peer {
    /// The peer a TCP client at `addr` counts as.
    pub(super) fn tcp(addr: SocketAddr) -> Peer {
        Peer::Ip(match addr.ip().to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
            v4 => v4,
        })
    }
}

/// One held connection.
struct Held {
    peer: Peer,
    /// Its request head is complete (it is being answered).
    answered: bool,
    /// Dropped to close the connection: its task waits on the other end.
    _close: oneshot::Sender<()>,
}

/// The connections held, oldest first (ids only grow).
#[derive(Default)]
struct Table {
    next: u64,
    held: BTreeMap<u64, Held>,
}

impl Table {
    /// Closes the oldest connection that `within` selects, one without a complete
    /// request head if there is any.
    fn close_oldest(&mut self, within: impl Fn(&Held) -> bool) {
        let oldest = (self.held.iter())
            .filter(|(_, h)| within(h))
            .min_by_key(|&(id, h)| (h.answered, *id))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.held.remove(&id);
        }
    }
}

/// The endpoint's connections.
#[derive(Clone, Default)]
pub(super) struct Clients(Arc<Mutex<Table>>);

impl Clients {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table is consistent between statements: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a new connection from `peer`, first closing the oldest of the peer's or of
    /// all if either is at its budget. The receiver completes when the connection is
    /// closed to make room for a newer one.
    pub(super) fn admit(&self, peer: Peer) -> (Place, oneshot::Receiver<()>) {
        let mut t = self.table();
        if t.held.values().filter(|h| h.peer == peer).count() >= MAX_PER_PEER {
            t.close_oldest(|h| h.peer == peer);
        }
        if t.held.len() >= MAX_CLIENTS {
            t.close_oldest(|_| true);
        }
        let (close, closed) = oneshot::channel();
        let id = t.next;
        t.next += 1;
        let held = Held {
            peer,
            answered: false,
            _close: close,
        };
        t.held.insert(id, held);
        let place = Place {
            id,
            clients: self.clone(),
        };
        (place, closed)
    }

    /// How many connections are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().held.len()
    }
}

/// A connection's place in the budget, given up when dropped.
pub(super) struct Place {
    id: u64,
    clients: Clients,
}

impl Place {
    /// Notes that the connection's request head is complete: it is closed to make room
    /// only after every connection still sending its head.
    pub(super) fn answered(&self) {
        if let Some(h) = self.clients.table().held.get_mut(&self.id) {
            h.answered = true;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.clients.table().held.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> Peer {
        Peer::tcp(SocketAddr::from(([10, 0, 0, last], 1000)))
    }

    /// Whether the connection behind `closed` was closed to make room.
    fn is_closed(closed: &mut oneshot::Receiver<()>) -> bool {
        closed.try_recv() == Err(oneshot::error::TryRecvError::Closed)
    }

    #[test]
    fn a_peer_over_its_budget_closes_its_own_oldest() {
        let clients = Clients::default();
        let (_other, mut other_closed) = clients.admit(peer(2));
        let mut held: Vec<_> = (0..MAX_PER_PEER).map(|_| clients.admit(peer(1))).collect();
        let (_newest, mut newest_closed) = clients.admit(peer(1));
        assert!(is_closed(&mut held[0].1), "the peer's oldest stays");
        assert!(held[1..].iter_mut().all(|(_, c)| !is_closed(c)));
        assert!(!is_closed(&mut newest_closed) && !is_closed(&mut other_closed));
        assert_eq!(clients.len(), MAX_PER_PEER + 1);
    }

    #[test]
    fn unix_clients_count_by_user() {
        let clients = Clients::default();
        let (_root, mut root_closed) = clients.admit(Peer::Local(Some(0)));
        let held: Vec<_> = (0..=MAX_PER_PEER)
            .map(|_| clients.admit(Peer::Local(Some(65534))))
            .collect();
        assert!(
            !is_closed(&mut root_closed),
            "another user's flood shed root's"
        );
        assert_eq!(clients.len(), MAX_PER_PEER + 1);
        drop(held);
    }

    #[test]
    fn over_budget_the_oldest_without_a_request_goes_first() {
        let clients = Clients::default();
        let mut held: Vec<_> = (0..MAX_CLIENTS)
            .map(|i| clients.admit(peer(i as u8 % 200)))
            .collect();
        held[0].0.answered();
        let (newest, _) = clients.admit(peer(250));
        assert!(
            !is_closed(&mut held[0].1),
            "an answered connection went first"
        );
        assert!(is_closed(&mut held[1].1));
        assert_eq!(clients.len(), MAX_CLIENTS);
        // With every connection answered, the oldest of all goes.
        held.iter().for_each(|(p, _)| p.answered());
        newest.answered();
        let _newer = clients.admit(peer(251));
        assert!(is_closed(&mut held[0].1));
    }

    #[test]
    fn a_place_is_given_up_when_dropped() {
        let clients = Clients::default();
        let (place, _closed) = clients.admit(Peer::Local(Some(0)));
        assert_eq!(clients.len(), 1);
        drop(place);
        assert_eq!(clients.len(), 0);
    }

    #[test]
    fn ipv6_peers_count_by_64() {
        let a: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let b: SocketAddr = "[2001:db8::ffff:2]:2".parse().unwrap();
        let c: SocketAddr = "[2001:db8:0:1::1]:1".parse().unwrap();
        assert_eq!(Peer::tcp(a), Peer::tcp(b));
        assert_ne!(Peer::tcp(a), Peer::tcp(c));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1000".parse().unwrap();
        assert_eq!(Peer::tcp(mapped), peer(1));
    }
}

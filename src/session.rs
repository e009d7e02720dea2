//! Drives the sans-IO handshake over a [`Transport`], then runs the two pumps of an
//! established session.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use spiped_transports::Transport;

use crate::pump::{self, PumpError};
use spiped_proto::dh;
use spiped_proto::handshake::{
    Exchange, Handshake, HandshakeError, MAX_READ_WINDOW, Mode, Next, Role,
};
use spiped_proto::key::Key;
use spiped_proto::packet::{Opener, Sealer};

/// Why an X25519 client's handshake stalls or is cut off: a server without the extension
/// (such as the C spiped) waits for the rest of a group-14 message that never comes, and
/// so does one of ours whose key differs. Added to those errors.
pub const X25519_HINT: &str = "the server may not support --x25519 (the C spiped does not), its key differs, or it \
     could not reach its target";

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// Our server closed the connection before the handshake finished (we are the
    /// client, and did not ask for X25519).
    ServerClosed,
    /// We asked for X25519 and the server closed the connection before answering.
    X25519Unanswered,
    /// The peer sent data before the handshake finished, which no spiped peer does.
    EarlyData,
    /// Reading or writing the encrypted side failed.
    Io(io::Error),
    /// Reading the plaintext to send with our DH message failed ([`Early`]).
    Source(io::Error),
    /// The peer's handshake messages were refused.
    Protocol(HandshakeError),
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Closed => f.write_str(
                "handshake failed: the peer closed the connection (wrong key, or a -g/-f mismatch?)",
            ),
            // C's -d connects to its target before it answers, and drops the client when
            // it cannot: that looks the same from here as a refused handshake.
            HandshakeFailure::ServerClosed => f.write_str(
                "handshake failed: the server closed the connection: wrong key, a -g/-f \
                 mismatch, or the server could not reach its target",
            ),
            HandshakeFailure::X25519Unanswered => write!(
                f,
                "handshake failed: the server closed the connection; {X25519_HINT}"
            ),
            HandshakeFailure::EarlyData => {
                f.write_str("handshake failed: the peer sent data before the handshake finished")
            }
            HandshakeFailure::Io(e) => {
                write!(f, "handshake failed: {}", crate::errors::describe(e))
            }
            HandshakeFailure::Source(e) => {
                write!(f, "read failed: {}", crate::errors::describe(e))
            }
            HandshakeFailure::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

/// Whether a write or read error means the peer closed the connection on us.
fn was_dropped(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// A finished handshake: the packet keys for this side, and what was agreed.
#[derive(Debug)]
pub struct Established {
    /// Seals the packets we send.
    pub sealer: Sealer,
    /// Opens the packets the peer sends.
    pub opener: Opener,
    /// Which of our keys the connection uses (0: the first `-k`).
    pub key_index: usize,
    /// The key agreement used.
    pub exchange: Exchange,
    /// What went out with our DH message ([`Early`]): `None` if nothing did (the
    /// handshake could not carry data), else how many bytes of the source (after the
    /// whole prefix).
    pub early: Option<usize>,
    /// How long the handshake took, from its first message to the packet keys.
    pub took: Duration,
}

/// Plaintext that a fast client sends along with its DH message when it can (see
/// [`Handshake::seal_early`]): all of `prefix`, then whatever `source` has ready at that
/// moment, without waiting for it.
pub struct Early<'a> {
    /// Bytes that must reach the server first (a PROXY protocol header).
    pub prefix: &'a [u8],
    /// The connection whose data the session carries (the accepted client of `-e`).
    pub source: &'a dyn Transport,
}

/// At most this much of the source goes with the DH message: the first batch of a pump,
/// more than most requests that open a conversation.
const EARLY_MAX: usize = 8 * spiped_proto::packet::PAYLOAD_MAX;

impl Early<'_> {
    /// Seals the prefix and what the source has ready into `hs`'s DH message; returns
    /// how many bytes of the source that was.
    async fn seal_into(self, hs: &mut Handshake) -> Result<usize, HandshakeFailure> {
        let start = self.prefix.len();
        let mut buf = vec![0; start + EARLY_MAX];
        buf[..start].copy_from_slice(self.prefix);
        // A read that would wait is dropped unstarted: nothing is taken from the source.
        let n = tokio::select! {
            biased;
            r = self.source.read(&mut buf[start..]) => r.map_err(HandshakeFailure::Source)?,
            () = std::future::ready(()) => 0,
        };
        if start + n > 0 {
            hs.seal_early(&buf[..start + n]);
        }
        Ok(n)
    }
}

/// Runs `hs` to completion over `t` and returns the packet keys for this side; sends
/// `early` data with our DH message if the handshake allows (see [`Early`]).
pub async fn handshake(
    t: &dyn Transport,
    mut hs: Box<Handshake>,
    mut early: Option<Early<'_>>,
) -> Result<Established, HandshakeFailure> {
    let client = hs.role() == Role::Client;
    let x25519 = client && hs.mode().x25519;
    let start = Instant::now();
    let mut inbox = Inbox::new();
    let mut sent_early = None;
    // A server that drops us shows as an end of stream, or, racing our write, as a
    // broken pipe or reset: the same event, named with its possible causes.
    let dropped = |e: HandshakeFailure| match e {
        HandshakeFailure::Io(e) if !client || !was_dropped(&e) => HandshakeFailure::Io(e),
        HandshakeFailure::Closed | HandshakeFailure::Io(_) if x25519 => {
            HandshakeFailure::X25519Unanswered
        }
        HandshakeFailure::Closed | HandshakeFailure::Io(_) if client => {
            HandshakeFailure::ServerClosed
        }
        e => e,
    };
    loop {
        if let Some(e) = early.take_if(|_| hs.seals_early()) {
            sent_early = Some(e.seal_into(&mut hs).await?);
        }
        match hs.next() {
            Next::Send(bytes) => {
                t.write_all(bytes)
                    .await
                    .map_err(|e| dropped(HandshakeFailure::Io(e)))?;
                hs = sent(hs).await;
            }
            Next::Recv(n) => {
                let window = hs.read_window();
                let got = inbox.take(t, n, window).await.map_err(dropped)?;
                hs = receive(hs, got).await.map_err(HandshakeFailure::Protocol)?;
            }
            Next::Done => break,
        }
    }
    if !inbox.is_empty() {
        return Err(HandshakeFailure::EarlyData);
    }
    let (key_index, exchange) = (hs.key_index(), hs.exchange());
    let (sealer, opener) = hs.finish().ok_or(HandshakeFailure::Closed)?;
    Ok(Established {
        sealer,
        opener,
        key_index,
        exchange: exchange.ok_or(HandshakeFailure::Closed)?,
        early: sent_early,
        took: start.elapsed(),
    })
}

/// Handshake bytes read from the peer and not yet consumed: a server reads a client's
/// messages with as few reads as they arrive in (see [`Handshake::read_window`]).
struct Inbox {
    buf: [u8; MAX_READ_WINDOW],
    start: usize,
    end: usize,
}

impl Inbox {
    fn new() -> Inbox {
        Inbox {
            buf: [0; MAX_READ_WINDOW],
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The next `n` bytes, reading until they are all here; a read takes at most up to
    /// `window` bytes from the start of these `n`.
    async fn take(
        &mut self,
        t: &dyn Transport,
        n: usize,
        window: usize,
    ) -> Result<&[u8], HandshakeFailure> {
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            // Never below `n`; past the buffer (no step asks for that much) the read
            // below fails cleanly instead.
            let limit = window.max(n).min(self.buf.len());
            while self.end < n {
                let room = self
                    .buf
                    .get_mut(self.end..limit)
                    .ok_or(HandshakeFailure::Closed)?;
                match t.read(room).await {
                    Ok(0) => return Err(HandshakeFailure::Closed),
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Err(HandshakeFailure::Closed);
                    }
                    Err(e) => return Err(HandshakeFailure::Io(e)),
                }
            }
        }
        let got = &self.buf[self.start..self.start + n];
        self.start += n;
        Ok(got)
    }
}

/// Connections of this process between accept and close.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Counts a connection as open for as long as it lives.
pub struct OpenConnection(());

impl OpenConnection {
    /// Counts one more open connection until the value is dropped.
    pub fn count() -> OpenConnection {
        OPEN.fetch_add(1, Ordering::Relaxed);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether [`off_loop`] hands work that is `costly` to the blocking pool: only when other
/// connections could use the event loop meanwhile.
pub(crate) fn offloads(costly: bool) -> bool {
    costly && OPEN.load(Ordering::Relaxed) > 1
}

/// Runs `work` on the blocking pool when it is `costly` and other connections could use
/// the event loop meanwhile; otherwise right here, since alone the hand-off would only
/// add two thread wake-ups of latency.
pub(crate) async fn off_loop<R: Send + 'static>(
    costly: bool,
    work: impl FnOnce() -> R + Send + 'static,
) -> R {
    if !offloads(costly) {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only when the runtime shuts down, which drops this task too.
        Err(_) => std::future::pending().await,
    }
}

/// Starts a handshake with `key`; a server also accepts clients using any of `others`
/// (see [`Handshake::accepting_also`]). Cheap: it only draws random numbers; the
/// exponentiations come later, with the messages that need them. Boxed, so that handing
/// it to the blocking pool and back moves a pointer, not its secrets.
pub fn start(
    role: Role,
    mode: Mode,
    key: &Key,
    others: &[Key],
) -> Result<Box<Handshake>, getrandom::Error> {
    Ok(Box::new(
        Handshake::new(role, mode, key)?.accepting_also(others),
    ))
}

/// A group-14 key pair computed ahead on the blocking pool, so that `2^x` (about
/// 0.3 ms) is off the next handshake's critical path: each side would otherwise compute
/// it between receiving a message and answering it. Each pair serves one handshake;
/// taking one starts computing the next.
static SPARE: Mutex<Option<dh::Keypair>> = Mutex::new(None);
/// Whether a pair is being computed for [`SPARE`].
static REFILLING: AtomicBool = AtomicBool::new(false);
/// Whether this process keeps a spare at all: a daemon does; `spipe`, with its one
/// connection, would only waste the work.
static KEEP_SPARE: AtomicBool = AtomicBool::new(false);

/// Keeps a group-14 key pair computed ahead for the handshakes of this process, from
/// the next [`prime_spare`] or handshake on; for daemons, which expect many connections.
/// Starts no thread: a worker thread started before the sandbox would stay outside it.
pub fn keep_keypairs_ahead() {
    KEEP_SPARE.store(true, Ordering::Relaxed);
}

/// Starts computing the spare key pair now, if this process keeps one.
pub fn prime_spare() {
    if KEEP_SPARE.load(Ordering::Relaxed) {
        refill();
    }
}

/// The spare key pair, if one is ready; starts computing the next one.
fn take_spare() -> Option<dh::Keypair> {
    if !KEEP_SPARE.load(Ordering::Relaxed) {
        return None;
    }
    let spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner).take();
    refill();
    spare
}

/// Starts computing a spare key pair unless one is being computed.
fn refill() {
    if !REFILLING.swap(true, Ordering::AcqRel) {
        // Detached: the pair lands in SPARE whenever it is ready.
        drop(tokio::task::spawn_blocking(|| {
            // Without randomness the handshake itself fails and says so; no spare.
            if let Ok(pair) = dh::Keypair::generate() {
                *SPARE.lock().unwrap_or_else(PoisonError::into_inner) = Some(pair);
            }
            REFILLING.store(false, Ordering::Release);
        }));
    }
}

/// Feeds a received message to the handshake, on the blocking pool when it costs an
/// exponentiation and other connections are open.
async fn receive(mut hs: Box<Handshake>, bytes: &[u8]) -> Result<Box<Handshake>, HandshakeError> {
    if hs.needs_public_next()
        && let Some(pair) = take_spare()
    {
        hs.use_keypair(pair);
    }
    let bytes = bytes.to_vec();
    off_loop(hs.received_exponentiates(), move || {
        hs.received(&bytes).map(|()| hs)
    })
    .await
}

/// Tells the handshake its message is out. A group-14 server computes the shared secret
/// then (see [`Handshake::sent_agrees`]), on the blocking pool when other connections
/// are open.
async fn sent(mut hs: Box<Handshake>) -> Box<Handshake> {
    off_loop(hs.sent_agrees(), move || {
        hs.sent();
        hs
    })
    .await
}

/// Plaintext bytes a session has moved so far, per direction; kept up to date while it
/// runs, so a failed session still tells how far it got.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Plaintext bytes sealed and sent to the encrypted side.
    pub sent: AtomicU64,
    /// Plaintext bytes opened and delivered to the plaintext side.
    pub received: AtomicU64,
    /// Directions that have reached their end of stream (0 to 2): one means the
    /// connection is half-closed.
    pub finished: AtomicU8,
}

/// Seals `bytes` and writes them to `encrypted` ahead of everything the pumps will send:
/// extra plaintext for the peer's side (a PROXY protocol header), carried like data.
pub async fn send_first(
    encrypted: &dyn Transport,
    sealer: &mut Sealer,
    bytes: &[u8],
) -> io::Result<()> {
    let mut sealed = Vec::new();
    sealer.seal_all(bytes, &mut sealed);
    encrypted.write_all(&sealed).await
}

/// Moves data both ways between a plaintext transport and an encrypted one until both
/// directions have ended; the first failure in either direction ends both at once.
/// Counts what it moves in `traffic`.
pub async fn pipe(
    plain: &dyn Transport,
    encrypted: &dyn Transport,
    sealer: Sealer,
    opener: Opener,
    traffic: &Traffic,
) -> Result<(), PumpError> {
    let finished = &traffic.finished;
    tokio::try_join!(
        pump::encrypt(plain, encrypted, sealer, &traffic.sent, finished),
        pump::decrypt(encrypted, plain, opener, &traffic.received, finished),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use socket2::{Domain, Socket, Type};
    use spiped_transports::SocketStream;
    use spiped_transports::event_loop::block_on;

    use super::*;

    /// A client sends its nonce and DH message in one write (as they may arrive), plus
    /// `extra` bytes; returns how our server's handshake ended.
    fn server_against(mode: Mode, extra: &[u8]) -> Result<Exchange, HandshakeFailure> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        let key = Key::from_file_contents(b"a shared key file");
        block_on(async {
            let (client, server) = (
                SocketStream::new(a, false, "client".into()).unwrap(),
                SocketStream::new(b, false, "server".into()).unwrap(),
            );
            let served = async {
                let hs = start(Role::Server, Mode::default(), &key, &[]).unwrap();
                let outcome = handshake(&server, hs, None).await.map(|e| e.exchange);
                drop(server);
                outcome
            };
            let client_side = async {
                let mut hs = Handshake::new(Role::Client, mode, &key).unwrap();
                let mut first = Vec::new();
                let mut send = |hs: &mut Handshake| {
                    let Next::Send(bytes) = hs.next() else {
                        panic!("the client should send now");
                    };
                    first.extend_from_slice(bytes);
                    hs.sent();
                };
                send(&mut hs);
                let mut nonce = [0; 32];
                let mut got = 0;
                while got < nonce.len() {
                    got += client.read(&mut nonce[got..]).await.unwrap();
                }
                hs.received(&nonce).unwrap();
                send(&mut hs);
                first.extend_from_slice(extra);
                // Ignored: with extra bytes the server may hang up first.
                let _ = client.write_all(&first).await;
            };
            tokio::join!(served, client_side).0
        })
        .unwrap()
    }

    /// Reads exactly `buf.len()` bytes.
    async fn read_exact(t: &dyn Transport, buf: &mut [u8]) {
        let mut got = 0;
        while got < buf.len() {
            let n = t.read(&mut buf[got..]).await.unwrap();
            assert!(n > 0, "closed after {got} bytes");
            got += n;
        }
    }

    #[test]
    fn fast_client_sends_ready_data_with_its_dh_message() {
        let key = Key::from_file_contents(b"a shared key file");
        let stream = |s| SocketStream::new(s, false, "test".into()).unwrap();
        let pair = || Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        let ((a, b), (user, source)) = (pair(), pair());
        block_on(async {
            let (client, server, source) = (stream(a), stream(b), stream(source));
            let mut user = user;
            std::io::Write::write_all(&mut user, b"hello").unwrap();
            let fast = Mode {
                fast: true,
                ..Mode::default()
            };
            let client_side = async {
                let hs = start(Role::Client, fast, &key, &[]).unwrap();
                let early = Early {
                    prefix: b"header ",
                    source: &source,
                };
                handshake(&client, hs, Some(early)).await.unwrap()
            };
            // A server that answers only once the client's first packet is in: it would
            // wait forever for a client that sends data after the handshake.
            let server_side = async {
                let mut hs = Handshake::new(Role::Server, Mode::default(), &key).unwrap();
                let mut nonce = [0; 32];
                read_exact(&server, &mut nonce).await;
                let Next::Send(ours) = hs.next() else {
                    panic!("the server sends its nonce first");
                };
                server.write_all(ours).await.unwrap();
                hs.sent();
                hs.received(&nonce).unwrap();
                let mut msg = [0; 288 + spiped_proto::packet::PACKET_LEN];
                read_exact(&server, &mut msg).await;
                hs.received(&msg[..64]).unwrap();
                hs.received(&msg[64..288]).unwrap();
                let Next::Send(answer) = hs.next() else {
                    panic!("the server answers");
                };
                server.write_all(answer).await.unwrap();
                hs.sent();
                let (_, mut opener) = hs.finish().unwrap();
                let packet: &mut [u8; 1060] = (&mut msg[288..]).try_into().unwrap();
                let n = opener.open_in_place(&mut *packet).unwrap();
                packet[..n].to_vec()
            };
            let both = async { tokio::join!(client_side, server_side) };
            let (client, plain) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
                .await
                .expect("the client did not send its data with the DH message");
            assert_eq!(client.early, Some(5));
            assert_eq!(plain, b"header hello");
        })
        .unwrap();
    }

    #[test]
    fn server_takes_client_messages_in_one_piece_and_refuses_early_data() {
        let x25519 = Mode {
            x25519: true,
            ..Mode::default()
        };
        assert_eq!(
            server_against(Mode::default(), b"").unwrap(),
            Exchange::Group14
        );
        assert_eq!(server_against(x25519, b"").unwrap(), Exchange::X25519);
        // Bytes after an X25519 message fall inside the read window: refused.
        let early = server_against(x25519, &[0; 100]);
        assert!(
            matches!(early, Err(HandshakeFailure::EarlyData)),
            "{early:?}"
        );
        // After a group-14 message they lie beyond it: the handshake never reads them
        // (they reach the packet layer, which refuses them).
        assert_eq!(
            server_against(Mode::default(), &[0; 100]).unwrap(),
            Exchange::Group14
        );
    }
}

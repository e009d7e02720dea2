//! The handshake driver over real sockets: messages arriving in one piece or with
//! early data, a fast client's early data, and a message too long for the buffer.

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
            let outcome = handshake(&Offload::default(), &server, hs, None)
                .await
                .map(|e| e.exchange);
            drop(server);
            outcome
        };
        let client_side = async {
            let mut hs = Handshake::new(Role::Client, mode, &key).unwrap();
            let mut first = Vec::new();
            let mut send = |hs: &mut Handshake| {
                let Next::Send(out) = hs.next() else {
                    panic!("the client should send now");
                };
                first.extend_from_slice(out.bytes);
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
            handshake(&Offload::default(), &client, hs, Some(early))
                .await
                .unwrap()
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
            server.write_all(ours.bytes).await.unwrap();
            hs.sent();
            hs.received(&nonce).unwrap();
            let mut msg = [0; 288 + spiped_proto::packet::PACKET_LEN];
            read_exact(&server, &mut msg).await;
            hs.received(&msg[..64]).unwrap();
            hs.received(&msg[64..288]).unwrap();
            let Next::Send(answer) = hs.next() else {
                panic!("the server answers");
            };
            server.write_all(answer.bytes).await.unwrap();
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
fn a_message_longer_than_the_buffer_is_a_bug_not_a_closed_peer() {
    let (a, _b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    let outcome = block_on(async {
        let t = SocketStream::new(a, false, "test".into()).unwrap();
        let mut inbox = Inbox::new();
        let n = MAX_READ_WINDOW + 1;
        inbox.take(&t, n, n).await.map(<[u8]>::len)
    })
    .unwrap();
    let e = outcome.unwrap_err();
    assert!(matches!(e, HandshakeFailure::Internal(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "handshake failed: internal error: a handshake message longer than the read \
         buffer; this is a bug, please report it"
    );
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

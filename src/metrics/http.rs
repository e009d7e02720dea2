//! The metrics endpoint's HTTP server (`--metrics`): hyper, HTTP/1 only, one request
//! per connection, hardened against clients that misbehave: headers are bounded in
//! size and in the time they may take, each connection in its total time, and the
//! number of connections served at once is capped (the ones over it are closed at
//! once). Nothing a client sends can stop the daemon or make it hold more than
//! [`MAX_CLIENTS`] small buffers.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use spiped_transports::{Endpoint, SocketFile, StreamOptions, listening_socket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use super::Metrics;
use crate::errors::describe;
use crate::log;

/// Connections served at once; more are closed as soon as they are accepted. A scraper
/// needs one; the rest is room for a few people with curl.
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request line and headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all, request and response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The read buffer, which bounds the request line plus headers (hyper's minimum):
/// a larger request is answered 431 and closed.
pub const MAX_HEADER_BYTES: usize = 8192;
/// Header lines a request may have.
const MAX_HEADERS: usize = 32;
/// How long to back off when accept fails for lack of resources (EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound, listening metrics endpoint, not serving yet.
pub struct Server {
    socket: socket2::Socket,
    endpoint: Endpoint,
    /// The (device, inode) of a UNIX socket's file as bound.
    file_id: Option<(u64, u64)>,
}

/// Binds the metrics endpoint on `ep` (before privileges are dropped, like the source).
/// A stale UNIX socket file is replaced, as for `-s`.
pub fn bind(ep: &Endpoint) -> Result<Server, String> {
    let opts = StreamOptions { keepalive: false };
    let (socket, file_id) = listening_socket(ep, SocketFile::default(), opts)
        .map_err(|e| format!("cannot listen on {ep} (--metrics): {}", describe(&e)))?;
    Ok(Server {
        socket,
        endpoint: ep.clone(),
        file_id,
    })
}

/// The listening socket in the runtime's terms.
enum Listening {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Server {
    /// The UNIX socket file to remove at exit (if the path still names it) and its
    /// (device, inode) as bound; `None` for TCP.
    pub fn unix_file(&self) -> Option<(&Path, (u64, u64))> {
        match (&self.endpoint, self.file_id) {
            (Endpoint::Unix(p), Some(id)) => Some((p, id)),
            _ => None,
        }
    }

    /// Accepts and serves clients for ever, on the daemon's event loop (so that an
    /// answer to `/healthz` shows the loop is turning). A listener the loop cannot take
    /// is reported, and the daemon goes on piping without its endpoint.
    pub async fn serve(self, metrics: Arc<Metrics>) {
        let listening = match self.listen() {
            Ok(l) => l,
            Err(e) => {
                log::warn(&format!(
                    "metrics endpoint on {} not started: {}",
                    self.endpoint,
                    describe(&e)
                ));
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        let mut failing = false;
        loop {
            let accepted = match &listening {
                Listening::Tcp(l) => l.accept().await.map(|(s, _)| Client::Tcp(s)),
                Listening::Unix(l) => l.accept().await.map(|(s, _)| Client::Unix(s)),
            };
            let client = match accepted {
                Ok(c) => {
                    failing = false;
                    c
                }
                Err(e) => {
                    if !failing {
                        log::warn(&format!(
                            "metrics endpoint: accept failed: {}; retrying",
                            describe(&e)
                        ));
                        failing = true;
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Over the cap: dropping the client closes it, costing nothing further.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                match client {
                    Client::Tcp(s) => serve_client(s, metrics).await,
                    Client::Unix(s) => serve_client(s, metrics).await,
                }
                drop(slot);
            });
        }
    }

    fn listen(&self) -> std::io::Result<Listening> {
        let fd = self.socket.try_clone()?;
        Ok(match self.endpoint {
            Endpoint::Tcp(_) => Listening::Tcp(tokio::net::TcpListener::from_std(fd.into())?),
            Endpoint::Unix(_) => Listening::Unix(tokio::net::UnixListener::from_std(fd.into())?),
        })
    }
}

/// An accepted client.
enum Client {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Serves one request on `io`, within [`CONNECTION_TIMEOUT`].
async fn serve_client<S>(io: S, metrics: Arc<Metrics>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let metrics = metrics.clone();
        async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service);
    // Errors are the client's (a malformed request, a reset): hyper has answered what
    // deserved an answer, and there is nothing to log for each of a flood of them.
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
}

/// The answer to `req`: `/metrics`, `/status` and `/healthz` take GET (and HEAD).
fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let page: fn(&Metrics) -> (&'static str, String) = match req.uri().path() {
        "/metrics" => |m| (prometheus_text::CONTENT_TYPE, m.scrape()),
        "/status" => |m| ("application/json", m.status_json()),
        // Answering at all shows that the runtime serving us is turning.
        "/healthz" => |_| ("text/plain; charset=utf-8", "ok\n".to_owned()),
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /status or /healthz\n",
            );
        }
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (kind, text) = page(metrics);
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// A short plain-text answer with `status`.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

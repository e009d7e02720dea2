//! The metrics endpoint's HTTP server (`--metrics`): hyper, HTTP/1 only, one request
//! per connection, hardened against clients that misbehave: headers are bounded in
//! size and in the time they may take, each connection in its total time, and the
//! connections held at once are bounded without ever turning the newest away (see
//! `clients`). Nothing a client sends can stop the daemon, keep a prompt request from
//! being answered, or make it hold more than
//! [`MAX_CLIENTS`](super::clients::MAX_CLIENTS) small buffers. A request naming another
//! host is refused (see `host`).

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
use spiped_transports::{Address, Endpoint, Listener, SocketFile, SocketStream, StreamOptions};
use tokio::sync::oneshot;

use super::Metrics;
use super::clients::{Clients, Peer, Place};
use super::host::{Hosts, Refused};
use crate::errors::{accept_trouble, describe};
use crate::log;

/// How long a client may take to send its request line and headers.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all, request and response.
pub(super) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The read buffer, which bounds the request line plus headers (hyper's minimum):
/// a larger request is answered 431 and closed.
pub(super) const MAX_HEADER_BYTES: usize = 8192;
/// Header lines a request may have.
const MAX_HEADERS: usize = 32;
/// What the endpoint's connections are accepted with: a scraper's connection lasts one
/// request, so keepalive probes would never fire.
const OPTIONS: StreamOptions = StreamOptions { keepalive: false };

/// A bound, listening metrics endpoint, not serving yet.
pub(crate) struct Server {
    listener: Listener,
    /// The `Host` a request may name.
    hosts: Hosts,
}

/// The metrics endpoint could not listen where `--metrics` said.
#[derive(Debug)]
pub(crate) struct BindError {
    /// Where it was to listen.
    endpoint: Endpoint,
    /// Why it could not.
    error: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ep, e) = (&self.endpoint, &self.error);
        write!(f, "cannot listen on {ep} (--metrics): {}", describe(e))
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Binds the metrics endpoint on `ep`, which `addr` (as given to `--metrics`) resolved
/// to, before privileges are dropped, like the sources. A stale UNIX socket file is
/// replaced, as for `-s`. An address beyond loopback draws a warning: the endpoint has
/// no authentication, and `/status` names key files, targets and peers.
pub(crate) fn bind(addr: &Address, ep: &Endpoint) -> Result<Server, BindError> {
    let listener =
        Listener::bind_with(ep, SocketFile::default(), OPTIONS).map_err(|error| BindError {
            endpoint: ep.clone(),
            error,
        })?;
    let hosts = match (addr, ep) {
        (_, Endpoint::Unix(_)) => Hosts::Any,
        (Address::Name { host, .. }, _) => Hosts::Own(Some(host.clone())),
        _ => Hosts::Own(None),
    };
    if let Endpoint::Tcp(a) = ep
        && !a.ip().to_canonical().is_loopback()
    {
        log::warn(&format!(
            "metrics endpoint on {ep} is reachable beyond this host and has no \
             authentication: /status shows key file paths, targets and peers' addresses"
        ));
    }
    Ok(Server { listener, hosts })
}

impl Server {
    /// The UNIX socket file to remove at exit (if the path still names it) and its
    /// (device, inode) as bound; `None` for TCP.
    pub(crate) fn unix_file(&self) -> Option<(&Path, (u64, u64))> {
        self.listener.unix_file()
    }

    /// Accepts and serves clients for ever, on the daemon's event loop (so that an
    /// answer to `/healthz` shows the loop is turning).
    pub(crate) async fn serve(self, metrics: Arc<Metrics>) {
        let clients = Clients::default();
        let hosts = Arc::new(self.hosts);
        let on = self.listener.endpoint();
        loop {
            let client = (self.listener.accept_retrying(OPTIONS, |trouble| {
                log::warn(&format!(
                    "metrics endpoint: {}",
                    accept_trouble(on, trouble)
                ));
            }))
            .await;
            let peer = match on {
                Endpoint::Tcp(_) => match client.ends() {
                    Ok((Endpoint::Tcp(a), _)) => Peer::tcp(a),
                    // Gone already (reset before we could ask): nothing to serve.
                    _ => continue,
                },
                Endpoint::Unix(_) => Peer::Local(client.peer_uid().ok()),
            };
            let (place, shed) = clients.admit(peer);
            let served = Served {
                metrics: metrics.clone(),
                hosts: hosts.clone(),
                place: Arc::new(place),
            };
            tokio::spawn(serve_client(client, served, shed));
        }
    }
}

/// What a connection's request is answered from.
struct Served {
    metrics: Arc<Metrics>,
    hosts: Arc<Hosts>,
    /// The connection's place among those held, given up when it closes.
    place: Arc<Place>,
}

/// Serves one request on `io`, within [`CONNECTION_TIMEOUT`], or until `shed` says the
/// connection is closed to make room for newer ones.
async fn serve_client(io: SocketStream, served: Served, shed: oneshot::Receiver<()>) {
    let service = service_fn(move |req| {
        served.place.answered();
        let answer = respond(&req, &served.metrics, &served.hosts);
        async move { Ok::<_, Infallible>(answer) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service);
    // Errors are the client's (a malformed request, a reset): hyper has answered what
    // deserved an answer, and there is nothing to log for each of a flood of them. A
    // connection shed for a newer one is closed by dropping it.
    tokio::select! {
        _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {}
        _ = shed => {}
    }
}

/// The answer to `req`: `/metrics`, `/status` and `/healthz` take GET (and HEAD), when
/// its `Host` is one of `hosts`.
fn respond(req: &Request<Incoming>, metrics: &Metrics, hosts: &Hosts) -> Response<Full<Bytes>> {
    match hosts.check(req) {
        Ok(()) => {}
        Err(Refused::Malformed) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "bad request: a request needs one Host header naming a host\n",
            );
        }
        Err(Refused::Elsewhere) => {
            return plain(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected request: Host names neither an IP address, localhost nor the \
                 name given to --metrics (a guard against DNS rebinding)\n",
            );
        }
    }
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

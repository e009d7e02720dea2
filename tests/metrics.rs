//! The metrics endpoint (`--metrics`): the counters equal what happened, the scrape is
//! valid for Prometheus's own tools (`promtool check metrics`, and a real Prometheus
//! server scraping it), `/status` shows open connections without key material, SIGUSR1
//! logs them, and the endpoint survives garbage while the daemon keeps piping.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const NEW_KEY: &[u8] = b"the key the clients of the metrics tests use now";
const OLD_KEY: &[u8] = b"the key the clients of the metrics tests used before";
const WRONG_KEY: &[u8] = b"a key the metrics tests' server never accepts";
const DEADLINE: Duration = Duration::from_secs(30);

/// A `GET path` naming `localhost` over a fresh connection to `addr`: the status code
/// and the body.
fn get(addr: &Addr, path: &str) -> Result<(u16, String), String> {
    ask(addr, path, Some("localhost"), DEADLINE)
}

/// A `GET path` with the `Host` header `host` (none if `None`) over a fresh connection
/// to `addr`, each read given up after `patience`: the status code and the body.
fn ask(
    addr: &Addr,
    path: &str,
    host: Option<&str>,
    patience: Duration,
) -> Result<(u16, String), String> {
    let mut s = addr.connect().map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(patience))
        .map_err(|e| e.to_string())?;
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let (raw, err) = s.read_to_eof();
    if let Some(e) = err {
        return Err(format!("read: {e}"));
    }
    let text = String::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((code, body.to_owned()))
}

/// The samples of a scrape, by series (`name{labels}` as written).
fn scrape(addr: &Addr) -> HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_owned(), value.parse().expect("sample value"))
        })
        .collect()
}

/// Polls the scrape until every series in `want` has its value; panics with the
/// differences at the deadline.
fn wait_series(addr: &Addr, want: &[(String, f64)]) -> HashMap<String, f64> {
    let mut wrong = Vec::new();
    let got = poll(DEADLINE, || {
        let got = scrape(addr);
        wrong = (want.iter())
            .filter(|(k, v)| got.get(k) != Some(v))
            .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
            .collect();
        wrong.is_empty().then_some(got)
    });
    got.unwrap_or_else(|| panic!("metrics at {addr}: {wrong:#?}"))
}

/// The scrape of a pipe at rest: once `hop` has accepted `accepted` connections and has
/// none open. The harness's readiness probes are connections too: each daemon's own,
/// and each `-e` in front passes its probe on as a connection to the server.
fn settled(addr: &Addr, hop: &Addr, accepted: usize) -> HashMap<String, f64> {
    wait_series(
        addr,
        &[
            (
                series("spiped_connections_accepted_total", hop, None),
                accepted as f64,
            ),
            (series("spiped_connections_open", hop, None), 0.0),
        ],
    )
}

/// Polls until each series in `deltas` has grown by its delta since `base`.
fn wait_deltas(addr: &Addr, base: &HashMap<String, f64>, deltas: &[(String, usize)]) {
    let want: Vec<_> = deltas
        .iter()
        .map(|(k, d)| (k.clone(), base.get(k).copied().unwrap_or(0.0) + *d as f64))
        .collect();
    wait_series(addr, &want);
}

/// `name{pipe="PIPE"[,LABEL="VALUE"]}`, as the daemon writes it.
fn series(name: &str, pipe: &Addr, label: Option<(&str, &str)>) -> String {
    match label {
        None => format!("{name}{{pipe=\"{pipe}\"}}"),
        Some((k, v)) => format!("{name}{{pipe=\"{pipe}\",{k}=\"{v}\"}}"),
    }
}

/// An address for the metrics endpoint: TCP on loopback.
fn metrics_addr(dir: &Path) -> Addr {
    Addr::fresh(Transport::Tcp, dir, "metrics")
}

/// Polls `/status` at `addr` until `done` accepts its JSON; returns the JSON and the
/// body, or panics with `what` and the last body at the deadline.
fn wait_status(
    addr: &Addr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, String) {
    let mut body = String::new();
    let status = poll(DEADLINE, || {
        let (code, text) = get(addr, "/status").unwrap();
        body = text;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
        done(&v).then_some(v)
    });
    let status = status.unwrap_or_else(|| panic!("{what}: {body}"));
    (status, body)
}

/// Waits until the endpoint at `addr` answers `/healthz`.
fn wait_healthy(addr: &Addr) {
    let mut last = Err(String::new());
    let healthy = poll(DEADLINE, || {
        last = get(addr, "/healthz");
        matches!(&last, Ok((200, body)) if body == "ok\n").then_some(())
    });
    assert!(healthy.is_some(), "/healthz at {addr}: {last:?}");
}

/// A server `-d` with two keys (new, old) in front of an echo target, and its metrics
/// endpoint on TCP.
struct Server {
    dir: tempfile::TempDir,
    target: Target,
    hop: Addr,
    metrics: Addr,
    d: Daemon,
}

impl Server {
    fn start() -> Server {
        let dir = temp_dir();
        let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
        let hop = Addr::fresh(Transport::Tcp, dir.path(), "hop");
        let metrics = metrics_addr(dir.path());
        let (new, old) = (
            key_arg(dir.path(), "new", NEW_KEY),
            key_arg(dir.path(), "old", OLD_KEY),
        );
        let m = metrics.arg();
        // The first -k is key 1 (new), the last one key 2 (old).
        let args = ["-d", "--metrics", &m, "-k", &new];
        let d = Daemon::pipe(
            Impl::Ours,
            "d",
            dir.path(),
            &hop,
            &target.addr.arg(),
            &old,
            &args,
        );
        wait_healthy(&metrics);
        Server {
            dir,
            target,
            hop,
            metrics,
            d,
        }
    }

    /// Our `-e` in front of this server with the key `bytes`, and `args`.
    fn client(&self, label: &str, bytes: &[u8], args: &[&str]) -> (Addr, Daemon) {
        let (dir, hop) = (self.dir.path(), self.hop.arg());
        let k = key_arg(dir, label, bytes);
        let d = Daemon::encrypting(Impl::Ours, label, dir, &hop, &k, args);
        (d.source.clone(), d)
    }
}

/// Sends `data` through the `-e` at `source` and asserts the echo is exact.
fn echo(source: &Addr, data: &[u8]) {
    assert_eq!(assert_echo(source, data).read_error, None);
}

#[test]
fn counters_equal_what_happened() {
    let server = Server::start();
    let m_dir = temp_dir();
    let e_metrics = Addr::Unix(m_dir.path().join("e-metrics.sock"));
    let e_arg = e_metrics.arg();
    let (new, _e_new) = server.client("enew", NEW_KEY, &["--metrics", &e_arg]);
    let (old, _e_old) = server.client("eold", OLD_KEY, &[]);
    let wrong_metrics = metrics_addr(m_dir.path());
    let w_arg = wrong_metrics.arg();
    let (wrong, _e_wrong) = server.client("ewrong", WRONG_KEY, &["--metrics", &w_arg]);
    let hop = &server.hop;
    // Each daemon's readiness probe: the server's own, and one through each client.
    let base = settled(&server.metrics, hop, 4);
    let e_base = settled(&e_metrics, &new, 1);
    let wrong_base = settled(&wrong_metrics, &wrong, 1);

    let (n, k, m) = (5usize, 2usize, 3usize);
    let mut bytes = 0;
    let mut new_bytes = 0;
    for i in 0..n {
        let data = payload(1000 + 70_000 * i, i as u64);
        echo(&new, &data);
        new_bytes += data.len();
    }
    bytes += new_bytes;
    // Clients still on the old key: accepted as key 2 while the rotation lasts.
    for i in 0..k {
        let data = payload(3000 * (i + 1), 100 + i as u64);
        echo(&old, &data);
        bytes += data.len();
    }
    for i in 0..m {
        let x = exchange(&wrong, b"never delivered", EXCHANGE_DEADLINE).unwrap();
        assert!(
            x.was_dropped(),
            "wrong key attempt {i} got {:?}",
            x.received
        );
    }

    let closed = |reason| {
        series(
            "spiped_connections_closed_total",
            hop,
            Some(("reason", reason)),
        )
    };
    let by = |name, label, value| series(name, hop, Some((label, value)));
    wait_deltas(
        &server.metrics,
        &base,
        &[
            (
                series("spiped_connections_accepted_total", hop, None),
                n + k + m,
            ),
            (series("spiped_connections_open", hop, None), 0),
            (closed("eof"), n + k),
            (closed("handshake_failed"), m),
            (closed("reset"), 0),
            (
                by("spiped_handshake_failures_total", "cause", "wrong_key"),
                m,
            ),
            (by("spiped_connections_by_key_total", "key", "1"), n),
            (by("spiped_connections_by_key_total", "key", "2"), k),
            (by("spiped_handshakes_total", "kind", "pfs"), n + k),
            (by("spiped_handshakes_total", "kind", "x25519"), 0),
            (
                series("spiped_handshake_duration_seconds_count", hop, None),
                n + k,
            ),
            (by("spiped_bytes_total", "direction", "from_peer"), bytes),
            (by("spiped_bytes_total", "direction", "to_peer"), bytes),
        ],
    );
    let Addr::Tcp(target) = &server.target.addr else {
        unreachable!("the target is on TCP")
    };
    let info = format!("spiped_target_info{{pipe=\"{hop}\",address=\"{target}\"}}");
    assert_eq!(scrape(&server.metrics).get(&info), Some(&1.0), "{info}");

    let e_by = |name, label, value| series(name, &new, Some((label, value)));
    wait_deltas(
        &e_metrics,
        &e_base,
        &[
            (series("spiped_connections_accepted_total", &new, None), n),
            (e_by("spiped_connections_closed_total", "reason", "eof"), n),
            (
                e_by("spiped_bytes_total", "direction", "from_peer"),
                new_bytes,
            ),
            (
                e_by("spiped_bytes_total", "direction", "to_peer"),
                new_bytes,
            ),
            (series("spiped_connections_open", &new, None), 0),
        ],
    );
    // The client with the wrong key only sees the server hang up.
    let w_by = |name, label, value| series(name, &wrong, Some((label, value)));
    wait_deltas(
        &wrong_metrics,
        &wrong_base,
        &[
            (
                w_by(
                    "spiped_connections_closed_total",
                    "reason",
                    "handshake_failed",
                ),
                m,
            ),
            (
                w_by("spiped_handshake_failures_total", "cause", "peer_closed"),
                m,
            ),
        ],
    );
    assert_eq!(server.target.total_received(), bytes);
}

/// `promtool check metrics` on a scrape of each side, after traffic (so every kind of
/// series has samples, histogram buckets included).
#[test]
fn scrape_passes_promtool() {
    if !program_available("/usr/bin/promtool", "prometheus") {
        return;
    }
    let server = Server::start();
    let e_metrics = Addr::Unix(server.dir.path().join("e-metrics.sock"));
    let (e, _ed) = server.client("e", NEW_KEY, &["--metrics", &e_metrics.arg()]);
    echo(&e, &payload(50_000, 7));
    for addr in [&server.metrics, &e_metrics] {
        let (code, body) = get(addr, "/metrics").unwrap();
        assert_eq!(code, 200);
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics: {}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An open connection shows on `/status` (peer, state, bytes each way) and in SIGUSR1's
/// log lines; the settings never include key material; HTTP errors are answered.
#[test]
fn status_page_and_sigusr1_show_open_connections() {
    let server = Server::start();
    let (e, _ed) = server.client("e", NEW_KEY, &[]);
    settled(&server.metrics, &server.hop, 2);
    let mut conn = e.connect().unwrap();
    let sent = payload(12_345, 3);
    conn.write_all(&sent).unwrap();
    let back = conn.read_exact_within(sent.len(), DEADLINE).unwrap();
    assert_eq!(sha(&back), sha(&sent));

    let (status, body) = wait_status(&server.metrics, "status never showed the bytes", |v| {
        v["pipes"][0]["open_connections"][0]["bytes_to_peer"] == sent.len()
    });
    assert!(!body.contains(std::str::from_utf8(NEW_KEY).unwrap()));
    assert!(!body.contains(std::str::from_utf8(OLD_KEY).unwrap()));
    // The sandbox in force, every layer asked for (so the start-up, already past when
    // /status answers, said nothing on stderr), and as a series per layer.
    assert_eq!(status["sandbox_as_asked"], true, "{body}");
    assert!(
        !server.d.stderr().contains("sandbox"),
        "{}",
        server.d.stderr()
    );
    let said = status["sandbox"].as_str().expect("the sandbox's summary");
    let scrape = scrape(&server.metrics);
    // Each layer's series says what the line says of it; seccomp works everywhere here.
    for (layer, off) in [
        ("landlock", "no landlock"),
        ("seccomp", "no seccomp"),
        ("no_capabilities", "capabilities kept"),
    ] {
        let on = scrape[&format!("spiped_sandbox_enforced{{layer=\"{layer}\"}}")];
        assert_eq!(on == 1.0, !said.contains(off), "{layer}: {said}");
    }
    assert_eq!(
        scrape["spiped_sandbox_enforced{layer=\"seccomp\"}"], 1.0,
        "{said}"
    );
    let pipe = &status["pipes"][0];
    assert_eq!(pipe["pipe"], server.hop.arg());
    assert_eq!(pipe["settings"]["direction"], "decrypt");
    assert_eq!(pipe["settings"]["keys"].as_array().unwrap().len(), 2);
    let c = &pipe["open_connections"][0];
    assert_eq!(c["state"], "open");
    assert_eq!(c["bytes_from_peer"], sent.len());
    assert_eq!(c["handshake"], "pfs");
    assert_eq!(c["key"], 1);
    assert!(c["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    let (id, peer, target) = (
        c["id"].as_u64().unwrap(),
        c["peer"].as_str().unwrap(),
        c["target"].as_str().unwrap(),
    );
    server.d.signal(libc::SIGUSR1);
    let line = format!("connection #{id} from {peer} to {target}: open, handshake group14, key 1");
    server.d.wait_stderr(&line, DEADLINE).unwrap();
    let count = format!("pipe {}: open connections: 1", server.hop);
    server.d.wait_stderr(&count, DEADLINE).unwrap();
    drop(conn);
    settled(&server.metrics, &server.hop, 3);

    // A target that sends its answer and half-closes, while the client sends on:
    // the connection is half-closed until the client ends too.
    let answer = payload(777, 9);
    server.target.set_mode(Mode::Duplex(answer.clone().into()));
    let mut conn = e.connect().unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    let (got, err) = conn.read_to_eof();
    assert_eq!((sha(&got), err.map(|e| e.kind())), (sha(&answer), None));
    let (v, body) = wait_status(&server.metrics, "never half-closed", |v| {
        v["pipes"][0]["open_connections"][0]["state"] == "half-closed"
    });
    let c = &v["pipes"][0]["open_connections"][0];
    assert_eq!(c["bytes_to_peer"], answer.len(), "{body}");
    server.d.signal(libc::SIGUSR1);
    server
        .d
        .wait_stderr(": half-closed, handshake group14, key 1", DEADLINE)
        .unwrap();
    // SIGUSR1 is not the end (C spiped dies of it; ours keeps serving).
    conn.write_all(b"the client's last words").unwrap();
    drop(conn);
    server.target.set_mode(Mode::Echo);
    echo(&e, b"still piping after SIGUSR1");

    let (code, _) = get(&server.metrics, "/nowhere").unwrap();
    assert_eq!(code, 404);
    let mut s = server.metrics.connect().unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let (raw, _) = s.read_to_eof();
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 405"));
}

/// A real Prometheus server scrapes our endpoint on loopback: `up` is 1 and the
/// accepted-connections counter it stored equals the connections made.
#[test]
fn prometheus_scrapes_the_endpoint() {
    if !program_available("/usr/bin/prometheus", "prometheus") {
        return;
    }
    let server = Server::start();
    let (e, _ed) = server.client("e", NEW_KEY, &[]);
    // The readiness probes of both daemons reach the server.
    let probes = 2;
    settled(&server.metrics, &server.hop, probes);
    let n = 4;
    for i in 0..n {
        echo(&e, &payload(100 + i, i as u64));
    }
    let dir = server.dir.path();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: spiped\n    static_configs:\n      - targets: ['{}']\n",
            server
                .metrics
                .arg()
                .trim_start_matches('[')
                .replace("]:", ":")
        ),
    )
    .unwrap();
    let web = Addr::fresh(Transport::Tcp, dir, "prometheus");
    let web_arg = web.arg().trim_start_matches('[').replace("]:", ":");
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let prometheus = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web_arg}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let _guard = KillOnDrop(prometheus);

    let query = |q: &str| -> Option<f64> {
        let (code, body) = get(&web, &format!("/api/v1/query?query={q}")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        if code != 200 || v["status"] != "success" {
            return None;
        }
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    // One deadline for all three waits; Prometheus is asked every 200 ms.
    let end = Instant::now() + Duration::from_secs(90);
    let wait = |q: &str, want: f64| {
        let mut got = None;
        let left = end.saturating_duration_since(Instant::now());
        let seen = poll_every(left, Duration::from_millis(200), || {
            got = query(q);
            (got == Some(want)).then_some(())
        });
        assert!(
            seen.is_some(),
            "prometheus: {q} = {got:?}, want {want}; its log: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
    };
    wait("up", 1.0);
    wait("spiped_connections_accepted_total", (probes + n) as f64);
    wait("spiped_connections_open", 0.0);
}

/// Kills and reaps a child process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Garbage at the endpoint: 1,000 malformed requests, more slow clients than it serves
/// at once, a header of a megabyte. Meanwhile the daemon pipes a transfer intact; after
/// it the endpoint answers again, and memory has not grown with what was sent.
#[test]
fn endpoint_survives_garbage() {
    let server = Server::start();
    let (e, _ed) = server.client("e", NEW_KEY, &[]);
    echo(&e, b"warm up");
    let rss_before = server.d.rss_kib();
    let metrics = server.metrics.clone();

    // A transfer runs through the daemon while the endpoint is flooded.
    let big = payload(8 << 20, 42);
    let transfer = {
        let (e, big) = (e.clone(), big.clone());
        thread::spawn(move || exchange(&e, &big, EXCHANGE_DEADLINE))
    };

    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
        // A TLS ClientHello: someone scraping with https://.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GET \x7f\x00 HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nX-Control: \x01\x02\r\n\r\n".to_vec(),
    ];
    for i in 0..1000 {
        let mut s = metrics.connect().unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        // The server may close before reading everything: a failed write is fine.
        let _ = s.write_all(&garbage[i % garbage.len()]);
        let (answer, _) = s.read_to_eof();
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 4"),
            "request {i} answered {text:?}"
        );
    }

    // A request line, then nothing: more such clients than one peer may hold at once.
    let slow: Vec<_> = (0..40)
        .map(|_| {
            let mut s = metrics.connect().unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n");
            s
        })
        .collect();
    // A header of a megabyte.
    let mut huge = metrics.connect().unwrap();
    huge.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut header = b"GET /metrics HTTP/1.1\r\nX-Huge: ".to_vec();
    header.resize(header.len() + (1 << 20), b'a');
    header.extend_from_slice(b"\r\n\r\n");
    let _ = huge.write_all(&header);
    let (answer, _) = huge.read_to_eof();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text:?}"
    );

    // Every slow client is let go (the oldest as newer ones come, the rest at the header
    // timeout).
    for (i, mut s) in slow.into_iter().enumerate() {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut b = [0u8; 1];
        let r = s.read(&mut b);
        assert!(
            matches!(r, Ok(0) | Err(_)) || String::from_utf8_lossy(&b) == "H",
            "slow client {i} still held: {r:?}"
        );
    }

    let x = join_deadline(transfer, EXCHANGE_DEADLINE)
        .expect("transfer finished")
        .unwrap();
    assert_eq!(sha(&x.received), sha(&big), "the transfer during the flood");
    wait_healthy(&metrics);
    let got = scrape(&metrics);
    assert!(got.contains_key(&series(
        "spiped_connections_accepted_total",
        &server.hop,
        None
    )));
    let rss_after = server.d.rss_kib();
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// What one peer may hold at once at the endpoint (its per-peer budget).
const PER_PEER: usize = 16;
/// How long the endpoint gives a client to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: &Addr) -> TcpStream {
    let Addr::Tcp(to) = to else {
        unreachable!("the endpoint is on TCP")
    };
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    s.connect_timeout(&(*to).into(), DEADLINE)
        .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    s.into()
}

/// Sends `head` one byte per write, as a slow client does, until the server has closed.
fn dribble(s: &mut impl Write, head: &[u8]) {
    for b in head {
        if s.write_all(&[*b]).is_err() {
            return;
        }
    }
}

/// Asserts that `/healthz` at `addr` answers `ok` within a second.
fn healthy_within_a_second(addr: &Addr, what: &str) {
    let started = Instant::now();
    let answer = ask(addr, "/healthz", Some("localhost"), Duration::from_secs(1));
    let took = started.elapsed();
    assert!(
        matches!(&answer, Ok((200, body)) if body == "ok\n") && took < Duration::from_secs(1),
        "/healthz {what}: {answer:?} after {took:?}"
    );
}

/// 500 stalled clients from 50 loopback addresses, half of them silent and half sending
/// a partial request head byte by byte, lock nobody out: `/healthz` answers within a
/// second each time, the daemon holds only its budget of them (RSS grows by less than
/// 16 MiB), and the pipe keeps piping.
#[test]
fn stalled_clients_cannot_lock_out_healthz() {
    let server = Server::start();
    let (e, _ed) = server.client("e", NEW_KEY, &[]);
    echo(&e, b"warm up");
    healthy_within_a_second(&server.metrics, "before the stalled clients");
    let rss_before = server.d.rss_kib();
    let stalled: Vec<TcpStream> = (0..500u32)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8);
            let mut s = connect_from(from, &server.metrics);
            if i % 2 == 1 {
                dribble(&mut s, b"GET /status HTTP/1.1\r\nHost: local");
            }
            s
        })
        .collect();
    // Accepted in order, so each probe comes after every stalled client.
    for probe in 0..5 {
        healthy_within_a_second(&server.metrics, &format!("probe {probe}"));
    }
    let rss_after = server.d.rss_kib();
    println!("RSS with 500 stalled clients: {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB with 500 stalled clients"
    );
    echo(&e, &payload(100_000, 11));
    drop(stalled);
}

/// A client sending its request head byte by byte is closed without an answer as soon
/// as its peer opens more connections than it may hold, long before the header timeout,
/// and a request from that peer is still answered.
#[test]
fn a_slow_header_client_is_shed_for_newer_ones() {
    let server = Server::start();
    let opened = Instant::now();
    let mut slow = server.metrics.connect().unwrap();
    dribble(
        &mut slow,
        b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    );
    let newer: Vec<_> = (0..PER_PEER)
        .map(|_| server.metrics.connect().unwrap())
        .collect();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let (answer, _) = slow.read_to_eof();
    let took = opened.elapsed();
    assert!(
        answer.is_empty(),
        "the slow client got {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        took < HEADER_TIMEOUT - Duration::from_secs(1),
        "the slow client was held {took:?}, as if only the header timeout let it go"
    );
    healthy_within_a_second(&server.metrics, "beside the newer clients");
    drop(newer);
}

/// Sockets the flooder of [`another_users_flood_cannot_shed_roots_probes`] holds.
const FLOOD_SOCKETS: usize = 200;
/// The variable naming the UNIX socket [`unix_flood_helper`] floods.
const FLOOD_AT: &str = "SPIPED_TEST_FLOOD_AT";

/// Not a test: the flooder of [`another_users_flood_cannot_shed_roots_probes`], run in
/// a child of this binary as `nobody`. Holds [`FLOOD_SOCKETS`] silent connections to
/// the socket `$SPIPED_TEST_FLOOD_AT`, reconnecting each as soon as it is closed, for at
/// most a minute; prints `flooding` once all are open.
#[test]
#[ignore = "run by another_users_flood_cannot_shed_roots_probes as nobody"]
fn unix_flood_helper() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    let Some(at) = std::env::var_os(FLOOD_AT) else {
        return;
    };
    let connect = || {
        let s = UnixStream::connect(&at).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    };
    let mut socks: Vec<Option<UnixStream>> = (0..FLOOD_SOCKETS).map(|_| connect()).collect();
    assert!(
        socks.iter().all(Option::is_some),
        "cannot connect to {at:?}"
    );
    println!("flooding");
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let mut fds: Vec<libc::pollfd> = (socks.iter().flatten())
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a live, exclusively borrowed array of fds.len() pollfds whose
        // descriptors stay open during the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        for s in &mut socks {
            let closed = match s {
                None => true,
                Some(s) => match s.read(&mut [0; 64]) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                },
            };
            if closed {
                *s = connect();
            }
        }
    }
}

/// A UNIX endpoint's clients count by user: under a reconnect flood of
/// [`FLOOD_SOCKETS`] silent connections from `nobody`, every one of 20 `/healthz`
/// probes from root answers within a second (when all clients of the socket were one
/// peer, the flood shed about a third of them before they were read).
#[test]
fn another_users_flood_cannot_shed_roots_probes() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !root() {
        return;
    }
    let server = Server::start();
    let unix = server.dir.path().join("e-metrics.sock");
    let (_, _ed) = server.client(
        "e",
        NEW_KEY,
        &["--metrics", &Addr::Unix(unix.clone()).arg()],
    );
    let metrics = Addr::Unix(unix.clone());
    wait_healthy(&metrics);
    // Let nobody reach the socket.
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    open(server.dir.path(), 0o755).unwrap();
    open(&unix, 0o777).unwrap();
    let (uid, gid) = passwd_ids("nobody");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "unix_flood_helper", "--ignored", "--nocapture"])
        .env(FLOOD_AT, &unix)
        .uid(uid.parse().unwrap())
        .gid(gid.parse().unwrap())
        .stdout(Stdio::piped());
    let mut flooder = Group::spawn(cmd);
    let out = flooder.leader().stdout.take().unwrap();
    let started = std::io::BufRead::lines(std::io::BufReader::new(out))
        .map_while(Result::ok)
        .any(|l| l == "flooding");
    assert!(started, "the flooder did not start");
    let failed: Vec<String> = (0..20)
        .filter_map(|probe| {
            let started = Instant::now();
            let answer = ask(
                &metrics,
                "/healthz",
                Some("localhost"),
                Duration::from_secs(1),
            );
            let took = started.elapsed();
            let ok = matches!(&answer, Ok((200, body)) if body == "ok\n");
            (!ok || took >= Duration::from_secs(1))
                .then(|| format!("probe {probe}: {answer:?} after {took:?}"))
        })
        .collect();
    assert!(
        flooder.leader().try_wait().unwrap().is_none(),
        "the flooder ended early"
    );
    assert!(
        failed.is_empty(),
        "{} of 20 probes failed: {failed:#?}",
        failed.len()
    );
}

/// DNS rebinding: a request naming any host but an IP address, `localhost` or the name
/// given to `--metrics` is refused with 421 and a body saying why; one without a `Host`
/// with 400. A UNIX socket endpoint answers whatever the `Host`.
#[test]
fn requests_must_name_this_endpoint() {
    let server = Server::start();
    let Addr::Tcp(at) = &server.metrics else {
        unreachable!("the endpoint is on TCP")
    };
    let port = at.port();
    let naming = |path, host: Option<&str>| ask(&server.metrics, path, host, DEADLINE).unwrap();
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
    ] {
        for path in ["/status", "/metrics", "/healthz"] {
            let (code, body) = naming(path, Some(&host));
            assert_eq!(code, 200, "{path} naming {host}: {body}");
        }
    }
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost.attacker.example:{port}"),
    ] {
        for path in ["/status", "/metrics", "/healthz"] {
            let (code, body) = naming(path, Some(&host));
            assert_eq!(code, 421, "{path} naming {host}: {body}");
            assert!(body.contains("DNS rebinding"), "{body}");
            assert!(!body.contains("pipes"), "{body}");
        }
    }
    let (code, body) = naming("/status", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Host"), "{body}");
    assert!(!server.d.stderr().contains("reachable beyond"));

    let unix = Addr::Unix(server.dir.path().join("e-metrics.sock"));
    let (_, _ed) = server.client("e", NEW_KEY, &["--metrics", &unix.arg()]);
    wait_healthy(&unix);
    for host in [Some("attacker.example"), None] {
        let (code, body) = ask(&unix, "/status", host, DEADLINE).unwrap();
        assert_eq!(
            code, 200,
            "/status on a UNIX socket naming {host:?}: {body}"
        );
    }
}

/// An endpoint on every address warns, in one line, that `/status` shows key files,
/// targets and peers; it still answers on loopback.
#[test]
fn an_endpoint_beyond_loopback_draws_a_warning() {
    let dir = temp_dir();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, dir.path(), "s");
    let k = key_arg(dir.path(), "k", NEW_KEY);
    let port = free_port();
    let wide = format!("[0.0.0.0]:{port}");
    let args = ["-d", "--metrics", &wide];
    let d = Daemon::pipe(
        Impl::Ours,
        "wide",
        dir.path(),
        &source,
        &target.addr.arg(),
        &k,
        &args,
    );
    let stderr = d.wait_stderr("reachable beyond", DEADLINE).unwrap();
    let warning: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("metrics endpoint"))
        .collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(
        warning[0].starts_with("spiped: ")
            && warning[0].contains(&format!("0.0.0.0:{port}"))
            && warning[0].contains("/status shows key file paths, targets and peers"),
        "{stderr}"
    );
    let local = Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    wait_healthy(&local);
    let (code, _) = ask(
        &local,
        "/status",
        Some(&format!("127.0.0.1:{port}")),
        DEADLINE,
    )
    .unwrap();
    assert_eq!(code, 200);
}

#[test]
fn metrics_address_problems_are_named() {
    let dir = temp_dir();
    let k = key_arg(dir.path(), "k", NEW_KEY);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_arg = format!("[127.0.0.1]:{}", busy.local_addr().unwrap().port());
    let source = Addr::fresh(Transport::Tcp, dir.path(), "s").arg();
    for (metrics, want) in [(busy_arg.as_str(), "(--metrics)"), ("9187", "--metrics")] {
        let mut cmd = spiped_cmd(Impl::Ours);
        cmd.args([
            "-F",
            "-d",
            "-s",
            &source,
            "-t",
            "[127.0.0.1]:1",
            "-k",
            &k,
            "--metrics",
            metrics,
        ]);
        let out = run(cmd);
        assert_eq!(out.code(), Some(1), "--metrics {metrics}: {}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "--metrics {metrics}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

/// Under a configuration file: `metrics = "ADDR"` at its top, series labelled with the
/// pipes' names, counts that a reload keeping the pipe keeps, reloads counted by
/// result, and a removed pipe gone from the status page.
#[test]
fn configuration_file_names_pipes_and_counts_reloads() {
    let dir = temp_dir();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let k = key_arg(dir.path(), "k", NEW_KEY);
    let (web, api) = (
        Addr::fresh(Transport::Tcp, dir.path(), "web"),
        Addr::fresh(Transport::Tcp, dir.path(), "api"),
    );
    let metrics = metrics_addr(dir.path());
    let pipe = |name: &str, source: &Addr| {
        format!(
            "[[pipe]]\nname = \"{name}\"\nencrypt = true\nsource = \"{}\"\ntarget = \"{}\"\n\
             key = \"{k}\"\n",
            source.arg(),
            target.addr.arg()
        )
    };
    let conf = dir.path().join("spiped.toml");
    let top = format!("metrics = \"{}\"\n", metrics.arg());
    std::fs::write(
        &conf,
        format!("{top}{}{}", pipe("web", &web), pipe("api", &api)),
    )
    .unwrap();
    let conf_arg = conf.to_str().unwrap();
    let d = Daemon::spawn(Impl::Ours, "config", dir.path(), &web, &["-c", conf_arg]);
    wait_healthy(&metrics);
    // The harness's readiness probe reached web; the echo target answers nothing
    // encrypted, so each connection ends at its handshake.
    let named = |name: &str| format!("spiped_connections_accepted_total{{pipe=\"{name}\"}}");
    let base = wait_series(&metrics, &[(named("web"), 1.0), (named("api"), 0.0)]);
    api.connect().unwrap();
    wait_deltas(&metrics, &base, &[(named("api"), 1)]);

    // A reload that keeps web (same source) and removes api.
    std::fs::write(&conf, format!("{top}{}", pipe("web", &web))).unwrap();
    d.signal(libc::SIGHUP);
    let reloads = |r: &str| format!("spiped_reloads_total{{result=\"{r}\"}}");
    wait_series(&metrics, &[(reloads("ok"), 1.0), (named("web"), 1.0)]);
    let (v, _) = wait_status(&metrics, "pipes on the status page", |v| {
        let names: Vec<_> = (v["pipes"].as_array().unwrap().iter())
            .map(|p| p["pipe"].as_str().unwrap().to_owned())
            .collect();
        names == ["web"]
    });
    assert_eq!(v["pipes"][0]["settings"]["name"], "web");
    web.connect().unwrap();
    wait_deltas(&metrics, &base, &[(named("web"), 1)]);

    // A broken file changes nothing and counts as a failed reload.
    std::fs::write(&conf, "[[pipe]]\nbogus = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    wait_series(&metrics, &[(reloads("failed"), 1.0), (reloads("ok"), 1.0)]);

    // An allow list that leaves loopback out: each client is refused and counted as
    // such, not as accepted.
    let allow = "allow = [\"10.0.0.0/8\"]\n";
    std::fs::write(&conf, format!("{top}{}{allow}", pipe("web", &web))).unwrap();
    d.signal(libc::SIGHUP);
    wait_series(&metrics, &[(reloads("ok"), 2.0)]);
    let refused = "spiped_connections_refused_total{pipe=\"web\"}".to_owned();
    let before = wait_series(&metrics, &[(refused.clone(), 0.0)]);
    for _ in 0..3 {
        let (got, _) = web.connect().unwrap().read_to_eof();
        assert!(got.is_empty(), "a refused client got {} bytes", got.len());
    }
    wait_deltas(&metrics, &before, &[(refused, 3), (named("web"), 0)]);
}

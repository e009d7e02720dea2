#!/usr/bin/env python3
"""Several targets per pipe: failover, balancing and health, measured on loopback.

    targets.py SPIPED [--only NAME]

Each scenario starts its own daemons, echo servers (this script run as `--echo`, each
answering the first byte with that byte and its one-letter name, so every client knows
which target served it) and load, and prints figures one per line as `name value unit`
(the format of the other benches, which compare.sh parses):

- refused:      `-e` -> `-d` with targets [refused, b, c]: 1,000 connections at 200/s,
                interleaved with 1,000 through a pair whose `-d` has only b.
- hung:         the same with a first target whose backlog is full and never accepts;
                `--connect-timeout 1`. hung_active: the same with `--health-interval 1`.
- kill:         `-e` with three `-d` targets a, b, c; 1,000 sessions of 0.2 s at 200/s;
                SIGKILL of a's `-d` half-way: which sessions fail.
- back_passive, back_active: `-e` with three `-d` targets, a's started 5.5 s late; the
                time until connections reach it (passive back-off, `--health-interval 1`).
- rr:           round-robin over three echo targets of a `-d`, 3,000 connections.
- lc:           least-connections over three targets, one holding its sessions 2 s and
                the others 0.2 s; sessions per target.
- wrongkey:     `-e` with three `-d` targets, the first holding another key from the
                start, `--health-interval 1`: when it is marked down, client failures.
- wrongkey_swap: the same, the first `-d`'s key changed (file rewritten, SIGHUP) 1 s
                into 1,000 connections: client failures before and after it is marked down.

Latencies are from the client's connect to its first byte's echo, through the pair.
Every process is started in its own process group and killed on the way out.
"""
import argparse, http.client, os, signal, socket, subprocess, sys, threading, time

from benchlib import free_port, key_file, wait_listening

LOOP = '127.0.0.1'
# Per-attempt connect timeout for the hung target: short, so the scenario takes seconds.
CONNECT_TIMEOUT = 1.0


def addr(port):
    """`port` on loopback written as spiped's -s/-t take it."""
    return f'[{LOOP}]:{port}'


def echo_main(port, name, hold):
    """The echo target: answers the first byte with that byte and `name`, then echoes
    until EOF or, with `hold` > 0, closes `hold` seconds after the first answer. Exits
    when its parent closes stdin, so a killed bench leaves no echo server behind."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((LOOP, port))
    ls.listen(1024)
    tag = name.encode()

    def handle(c):
        with c:
            try:
                d = c.recv(4096)
                if not d:
                    return
                c.sendall(d[:1] + tag + d[1:])
                if hold > 0:
                    time.sleep(hold)
                    return
                while True:
                    d = c.recv(4096)
                    if not d:
                        return
                    c.sendall(d)
            except OSError:
                return

    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    print('ready', flush=True)
    sys.stdin.read()
    os._exit(0)


class Procs:
    """The processes of one scenario, each in a process group of its own, so that
    `close` (always called, in a finally) leaves nothing running."""

    def __init__(self, spiped):
        self.spiped, self.procs = spiped, []

    def start(self, argv, name, ready=False):
        """Starts `argv`; its stderr lines are kept with their arrival time in `.log`.
        With `ready`, waits for the line 'ready' on its stdout."""
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        p.name, p.log, p.started = name, [], time.perf_counter()
        self.procs.append(p)

        def read():
            for line in p.stderr:
                p.log.append((time.perf_counter(), line.rstrip('\n')))
        p.reader = threading.Thread(target=read, daemon=True)
        p.reader.start()
        if ready and p.stdout.readline().strip() != 'ready':
            sys.exit(f'targets.py: {name} did not start')
        return p

    def by_name(self, name):
        """The process started as `name`."""
        return next(p for p in self.procs if p.name == name)

    def echo(self, name, hold=0.0):
        """An echo target named `name` (one letter); returns its port."""
        port = free_port()
        self.start([sys.executable, os.path.abspath(__file__), '--echo', str(port), name, str(hold)], f'echo {name}', True)
        return port

    def daemon(self, mode, targets, key, *extra, port=None):
        """`spiped -MODE` on loopback towards `targets` (ports, in order); returns (process, port)."""
        port = port or free_port()
        argv = [self.spiped, mode, '-F', '-n', '0', '-s', addr(port), '-k', key, *extra]
        for t in targets:
            argv += ['-t', addr(t)]
        p = self.start(argv, f'spiped {mode} :{port}')
        try:
            wait_listening(port, alive=lambda: p.poll() is None)
        except SystemExit:
            p.reader.join(1)  # the dead daemon's last words
            sys.exit(f'targets.py: {p.name} does not listen: ' + ' | '.join(l for _, l in p.log))
        return p, port

    def kill(self, p, sig=signal.SIGKILL):
        """Sends `sig` to `p`'s process group and reaps `p`."""
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def close(self):
        """Terminates every process still running, killing any that lingers."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                self.kill(p)
            # The group may hold a child the leader left behind.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Result:
    """One client session: when it started, its latency to the first echo, which
    target answered, and how it failed, if it did."""
    __slots__ = ('tag', 'start', 'end', 'latency', 'server', 'error')

    def __init__(self, tag):
        self.tag, self.start, self.end, self.latency, self.server, self.error = tag, 0.0, 0.0, None, None, None


def recv_exact(s, n):
    """`n` bytes from `s`, or what came before EOF."""
    b = b''
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b


def session(port, tag='', hold=0.0, until_eof=False):
    """Connects to `port`, sends one byte and reads its echo and the target's name;
    with `hold`, sends a second byte `hold` seconds later and reads its echo; with
    `until_eof`, reads until the target closes."""
    r = Result(tag)
    r.start = time.perf_counter()
    s = None
    try:
        s = socket.create_connection((LOOP, port), 10)
        s.sendall(b'x')
        got = recv_exact(s, 2)
        if len(got) < 2 or got[:1] != b'x':
            raise OSError(f'first echo {got!r}')
        r.latency, r.server = time.perf_counter() - r.start, got[1:].decode()
        if hold:
            time.sleep(hold)
            s.sendall(b'y')
            if recv_exact(s, 1) != b'y':
                raise OSError('closed before the second echo')
        if until_eof:
            s.settimeout(30)
            while s.recv(4096):
                pass
    except OSError as e:
        r.error = str(e) or type(e).__name__
    finally:
        if s:
            s.close()
        r.end = time.perf_counter()
    return r


def stream(jobs):
    """Runs `jobs` (pairs of start offset in seconds and a function returning a Result)
    open-loop: each starts at its offset from now on a thread of its own (the stdlib's
    pool module is shadowed here by benches/concurrent.py). Returns (start time,
    results in start order)."""
    jobs = sorted(jobs, key=lambda j: j[0])
    out, threads = [None] * len(jobs), []

    def run(i, job):
        out[i] = job()
    t0 = time.perf_counter()
    for i, (at, job) in enumerate(jobs):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not waiting for a state
        t = threading.Thread(target=run, args=(i, job), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return t0, out


def paced(port, n, rate, tag, offset=0.0, **kw):
    """`n` jobs of `session(port, tag, **kw)` at `rate` per second from `offset`."""
    return [(offset + i / rate, lambda: session(port, tag, **kw)) for i in range(n)]


def pct(xs, q):
    """The `q` quantile (nearest rank) of `xs`."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float('nan')


def fig(name, value, unit):
    """Prints one figure."""
    v = f'{value:.6g}' if isinstance(value, float) else str(value)
    print(f'{name} {v} {unit}', flush=True)


def note(msg):
    """A remark on stderr, outside the figures."""
    print(f'targets.py: {msg}', file=sys.stderr, flush=True)


def failures(rs):
    """Results that failed, with their errors noted on stderr (first five)."""
    bad = [r for r in rs if r.error]
    for r in bad[:5]:
        note(f'{r.tag} failed: {r.error} (served by {r.server})')
    return bad


def refused_port():
    """A loopback port nothing listens on: connects are refused."""
    return free_port()


def hung_listener():
    """A listener with a backlog of 0, filled by raw connects and never accepted, so
    SYNs to it are dropped and connects hang. Returns (port, sockets to keep open)."""
    ls = socket.socket()
    ls.bind((LOOP, 0))
    ls.listen(0)
    port, keep = ls.getsockname()[1], [ls]
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((LOOP, port))
        keep.append(s)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect((LOOP, port))
        sys.exit('targets.py: the hung listener accepted a connect: its backlog is not full')
    except socket.timeout:
        pass
    finally:
        probe.close()
    return port, keep


def two_pipes(ps, key, first, healthy, metrics, extra=()):
    """An `-e`/`-d` pair whose `-d` has targets `first` then `healthy` (and its metrics
    on port `metrics`), and a pair whose `-d` has `healthy[0]` only. Returns the two
    `-e` ports (several, one)."""
    _, d3 = ps.daemon('-d', [first, *healthy], key, '--metrics', addr(metrics), *extra)
    _, e3 = ps.daemon('-e', [d3], key)
    _, d1 = ps.daemon('-d', healthy[:1], key, *extra)
    _, e1 = ps.daemon('-e', [d1], key)
    return e3, e1


def latency_figs(prefix, many, one):
    """p50/p99 in ms of the two pipes' successful sessions and the added p99."""
    lm, lo = [r.latency for r in many if r.latency], [r.latency for r in one if r.latency]
    fig(f'{prefix}_p50', pct(lm, .5) * 1e3, 'ms')
    fig(f'{prefix}_p99', pct(lm, .99) * 1e3, 'ms')
    fig(f'{prefix}_one_p50', pct(lo, .5) * 1e3, 'ms')
    fig(f'{prefix}_one_p99', pct(lo, .99) * 1e3, 'ms')
    fig(f'{prefix}_added_p99', (pct(lm, .99) - pct(lo, .99)) * 1e3, 'ms')
    # Each session of one pipe starts 2.5 ms after one of the other's: a pair shares the
    # machine's load, so the median of their differences shows a cost under the noise
    # that swings a shared host's p99 by tens of ms.
    one = [r for r in one if r.start > many[0].start]
    diffs = [m.latency - o.latency for m, o in zip(many, one) if m.latency and o.latency]
    fig(f'{prefix}_added_paired_median', pct(diffs, .5) * 1e3, 'ms')


def refused(ps, key):
    """Refused primary: 0 client failures, added p99 against the one-target pipe."""
    b, c = ps.echo('b'), ps.echo('c')
    dead, m = refused_port(), free_port()
    e3, e1 = two_pipes(ps, key, dead, [b, c], m)
    t0, rs = stream(paced(e3, 1000, 200, 'many') + paced(e1, 1000, 200, 'one', offset=0.0025))
    many, one = [r for r in rs if r.tag == 'many'], [r for r in rs if r.tag == 'one']
    fig('refused_failures', len(failures(many)), 'conn')
    fig('refused_one_failures', len(failures(one)), 'conn')
    fig('refused_not_first_healthy', sum(r.server not in (None, 'b') for r in many), 'conn')
    fig('refused_rate', len(many) / (many[-1].start - t0), 'conn/s')
    tried = target_metric(scrape(m), 'spiped_target_connect_failures_total', dead)
    if tried is not None:
        fig('refused_dead_target_tried', tried, 'conn')
    latency_figs('refused', many, one)


def hung_with(ps, key, prefix, extra):
    """Hung primary: the first connections wait about connect-timeout and are served
    by the next target; afterwards p99 against the one-target pipe, and how many later
    connections waited on the hung target again (retries once a back-off ends)."""
    b, c = ps.echo('b'), ps.echo('c')
    h, keep = hung_listener()
    try:
        m = free_port()
        e3, e1 = two_pipes(ps, key, h, [b, c], m, ('--connect-timeout', str(CONNECT_TIMEOUT), *extra))
        t0, rs = stream(paced(e3, 1000, 200, 'many') + paced(e1, 1000, 200, 'one', offset=0.0025))
        tried = target_metric(scrape(m), 'spiped_target_connect_failures_total', h)
    finally:
        for s in keep:
            s.close()
    many, one = [r for r in rs if r.tag == 'many'], [r for r in rs if r.tag == 'one']
    first = [r for r in many if r.start - t0 < CONNECT_TIMEOUT]
    later = [r for r in many if r.start - t0 >= CONNECT_TIMEOUT + 0.5]
    fig(f'{prefix}_failures', len(failures(many)), 'conn')
    fig(f'{prefix}_connect_timeout', CONNECT_TIMEOUT, 's')
    fig(f'{prefix}_first_conns', len(first), 'conn')
    fig(f'{prefix}_first_max', max((r.end - r.start) for r in first), 's')
    fig(f'{prefix}_first_waited', sum((r.end - r.start) >= CONNECT_TIMEOUT / 2 for r in first), 'conn')
    fig(f'{prefix}_later_waited', sum((r.end - r.start) >= CONNECT_TIMEOUT / 2 for r in later), 'conn')
    if tried is not None:
        fig(f'{prefix}_target_tried', tried, 'conn')
    late_one = [r for r in one if r.start - t0 >= CONNECT_TIMEOUT + 0.5]
    latency_figs(prefix, later, late_one)


def hung(ps, key):
    """Hung primary, passive health only."""
    hung_with(ps, key, 'hung', ())


def hung_active(ps, key):
    """Hung primary with --health-interval 1: once a check has marked it down, no
    client connection tries it again."""
    hung_with(ps, key, 'hung_active', ('--health-interval', '1'))


def e_over_three_d(ps, key, keys=None, late=(), extra=()):
    """An `-e` whose targets are three `-d` (a, b, c), each in front of its own echo
    target. `keys` gives each `-d`'s key (default `key`); the `-d` named in `late` are
    not started. Returns (-e port, {name: (-d port, -d process or None)}, echo ports)."""
    echoes = {n: ps.echo(n) for n in 'abc'}
    ds = {}
    for n in 'abc':
        port = free_port()
        p = None if n in late else ps.daemon('-d', [echoes[n]], (keys or {}).get(n, key), port=port)[0]
        ds[n] = (port, p)
    _, e = ps.daemon('-e', [ds[n][0] for n in 'abc'], key, *extra)
    return e, ds, echoes


def kill(ps, key):
    """Kills the primary `-d` half-way through 1,000 sessions of 0.2 s: failures,
    split into sessions established on it, in flight, and started after the kill."""
    e, ds, _ = e_over_three_d(ps, key)
    killed = []

    def killer():
        killed.append(time.perf_counter())
        ps.kill(ds['a'][1])
        return Result('killer')
    jobs = paced(e, 1000, 200, 's', hold=0.2) + [(2.5, killer)]
    _, rs = stream(jobs)
    rs = [r for r in rs if r.tag == 's']
    k = killed[0]
    bad = failures(rs)
    open_on_a = [r for r in rs if r.server == 'a' and r.start < k and r.latency and r.start + r.latency < k < r.end]
    fig('kill_failures', len(bad), 'conn')
    fig('kill_open_on_primary', len(open_on_a), 'conn')
    fig('kill_failures_established_on_primary', sum(r.server == 'a' and r.start < k for r in bad), 'conn')
    in_flight = [r for r in bad if r.server is None and r.start < k]
    for r in in_flight:
        note(f'in flight at the kill: started {(k - r.start) * 1e3:.1f} ms before it, failed: {r.error}')
    fig('kill_failures_in_flight', len(in_flight), 'conn')
    fig('kill_failures_new', sum(r.start >= k for r in bad), 'conn')
    fig('kill_after_served_by_b', sum(r.server == 'b' and r.start >= k for r in rs), 'conn')


def backoff_in_force(down):
    """The passive back-off (1 s doubling to 30 s, retried when it ends) in force after
    a target has been down `down` seconds, probed all along."""
    t, b = 0.0, 1.0
    while t + b <= down:
        t, b = t + b, min(b * 2, 30.0)
    return b


def back(ps, key, name, extra):
    """Starts the primary `-d` 5.5 s after the `-e`, under a stream of 50 connections
    a second; prints how long after its start connections reach it."""
    down = 5.5
    e, ds, echoes = e_over_three_d(ps, key, late='a', extra=extra)
    t0 = time.perf_counter()
    started = None
    bad = 0
    i = 0
    while True:
        now = time.perf_counter()
        if started is None and now - t0 >= down:
            ps.daemon('-d', [echoes['a']], key, port=ds['a'][0])
            started = time.perf_counter()
        r = session(e, name)
        bad += r.error is not None
        if started and r.server == 'a' and r.start >= started:
            fig(f'{name}_reached_after', r.start - started, 's')
            break
        if started and now - started > 60:
            sys.exit(f'targets.py: {name}: the primary was not used again within 60 s')
        i += 1
        delay = t0 + i / 50 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load
    fig(f'{name}_down_for', started - t0, 's')
    fig(f'{name}_failures', bad, 'conn')
    return started - t0


def back_passive(ps, key):
    """Primary back, passive health only: within one back-off."""
    fig('back_passive_backoff', backoff_in_force(back(ps, key, 'back_passive', ())), 's')


def back_active(ps, key):
    """Primary back with --health-interval 1: within one interval."""
    back(ps, key, 'back_active', ('--health-interval', '1'))
    fig('back_active_interval', 1.0, 's')


def scrape(port):
    """The daemon's /metrics text."""
    c = http.client.HTTPConnection(LOOP, port, timeout=5)
    try:
        c.request('GET', '/metrics')
        return c.getresponse().read().decode()
    finally:
        c.close()


def target_metric(text, name, port):
    """The value of metric `name` for the target on `port` in a /metrics `text`, or
    None (noted) when it has no such series."""
    got = [l for l in text.splitlines() if l.startswith(name + '{') and f':{port}"' in l]
    if len(got) != 1:
        note(f'no single {name} series for target :{port}')
        return None
    return int(float(got[0].split()[-1]))


def rr(ps, key):
    """Round-robin over three targets: each target's share of 3,000 connections, and
    whether the per-target connection counters agree with what the clients saw."""
    ports = {n: ps.echo(n) for n in 'abc'}
    m = free_port()
    _, d = ps.daemon('-d', list(ports.values()), key, '--balance', 'round-robin', '--metrics', addr(m))
    _, e = ps.daemon('-e', [d], key)
    _, rs = stream(paced(e, 3000, 400, 'rr'))
    fig('rr_failures', len(failures(rs)), 'conn')
    seen = {n: sum(r.server == n for r in rs) for n in 'abc'}
    for n in 'abc':
        fig(f'rr_share_{n}', 100.0 * seen[n] / len(rs), '%')
    fig('rr_max_deviation', max(abs(100.0 * seen[n] / len(rs) - 100 / 3) for n in 'abc'), '%')
    text = scrape(m)
    counted = {n: target_metric(text, 'spiped_target_connections_total', p) for n, p in ports.items()}
    if None not in counted.values():
        fig('rr_counter_vs_clients', sum(abs(counted[n] - seen[n]) for n in 'abc'), 'conn')


def lc(ps, key):
    """least-connections with a slow target (sessions of 2 s against 0.2 s): sessions
    per target out of 600 at 100/s."""
    ports = [ps.echo('a', hold=2.0), ps.echo('b', hold=0.2), ps.echo('c', hold=0.2)]
    _, d = ps.daemon('-d', ports, key, '--balance', 'least-connections')
    _, e = ps.daemon('-e', [d], key)
    _, rs = stream(paced(e, 600, 100, 'lc', until_eof=True))
    fig('lc_failures', len(failures(rs)), 'conn')
    for n, what in (('a', 'slow'), ('b', 'fast1'), ('c', 'fast2')):
        fig(f'lc_sessions_{what}', sum(r.server == n for r in rs), 'conn')
    fig('lc_share_slow', 100.0 * sum(r.server == 'a' for r in rs) / len(rs), '%')


def down_lines(p, port):
    """When `p` logged target `port` down, in order."""
    return [t for t, l in p.log if 'is down' in l and f':{port} ' in l]


def wrongkey(ps, key):
    """`-e` whose first `-d` holds another key from the start, --health-interval 1:
    when the `-e` logs that target down (from its start), and client failures."""
    other = key_file()
    try:
        e, ds, _ = e_over_three_d(ps, key, keys={'a': other}, extra=('--health-interval', '1'))
        ep = ps.by_name(f'spiped -e :{e}')
        t0, rs = stream(paced(e, 1000, 200, 'wk'))
    finally:
        os.unlink(other)
    downs, bad = down_lines(ep, ds['a'][0]), failures(rs)
    fig('wrongkey_failures', len(bad), 'conn')
    fig('wrongkey_served_by_primary', sum(r.server == 'a' for r in rs), 'conn')
    if not downs:
        note('the -e never logged its first target down')
        return
    fig('wrongkey_down_after_start', downs[0] - ep.started, 's')
    fig('wrongkey_failures_before_down', sum(r.start < downs[0] for r in bad), 'conn')
    fig('wrongkey_failures_after_down', sum(r.start >= downs[0] for r in bad), 'conn')


def wrongkey_swap(ps, key):
    """The first `-d` of an `-e` (--health-interval 1) gets another key (its key file
    rewritten, SIGHUP) 1 s into 1,000 connections at 200/s: client failures before the
    `-e` logs that target down and after."""
    own = key_file()
    try:
        with open(key, 'rb') as f, open(own, 'wb') as g:
            g.write(f.read())
        e, ds, _ = e_over_three_d(ps, key, keys={'a': own}, extra=('--health-interval', '1'))
        ep = ps.by_name(f'spiped -e :{e}')
        swapped = []

        def swap():
            with open(own, 'wb') as g:
                g.write(os.urandom(32))
            os.kill(ds['a'][1].pid, signal.SIGHUP)
            swapped.append(time.perf_counter())
            return Result('swap')
        _, rs = stream(paced(e, 1000, 200, 'wk') + [(1.0, swap)])
    finally:
        os.unlink(own)
    rs = [r for r in rs if r.tag == 'wk']
    sw, bad = swapped[0], failures(rs)
    downs = [t for t in down_lines(ep, ds['a'][0]) if t > sw]
    fig('wrongkey_swap_failures', len(bad), 'conn')
    fig('wrongkey_swap_served_by_primary_after', sum(r.server == 'a' and r.start > sw for r in rs), 'conn')
    if not downs:
        note('the -e never logged its first target down after the key changed')
        return
    fig('wrongkey_swap_down_after', downs[0] - sw, 's')
    fig('wrongkey_swap_failures_before_down', sum(r.start < downs[0] for r in bad), 'conn')
    fig('wrongkey_swap_failures_after_down', sum(r.start >= downs[0] for r in bad), 'conn')


SCENARIOS = {f.__name__: f for f in (refused, hung, hung_active, kill, back_passive, back_active, rr, lc, wrongkey, wrongkey_swap)}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--echo':
        return echo_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    ap = argparse.ArgumentParser(description='Several targets per pipe, measured on loopback.')
    ap.add_argument('spiped')
    ap.add_argument('--only', choices=list(SCENARIOS), help='run this scenario only')
    a = ap.parse_args()
    # A SIGTERM unwinds like ^C, through the finally blocks that reap the processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('targets.py: terminated'))
    key = key_file()
    try:
        for name, f in SCENARIOS.items():
            if a.only and name != a.only:
                continue
            ps = Procs(a.spiped)
            try:
                f(ps, key)
            finally:
                ps.close()
    finally:
        os.unlink(key)


if __name__ == '__main__':
    main()

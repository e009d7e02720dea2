"""Helpers shared by the benchmark scripts: ports, readiness and process CPU time."""
import os, socket, sys, tempfile, threading, time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


def cpu(pid):
    """User plus system CPU seconds of process `pid`, all threads."""
    x = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(x[11]) + int(x[12])) / os.sysconf('SC_CLK_TCK')


def wait_port(port, who, deadline=10.0):
    """Polls until 127.0.0.1:`port` accepts, or exits naming `who`."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(('127.0.0.1', port), 1).close(); return
        except OSError:
            time.sleep(0.02)
    sys.exit(f'{who}: nothing listening on {port}')


def listening(port):
    """Whether 127.0.0.1:`port` listens, read from /proc/net/tcp: no probe connection,
    so a daemon being counted sees none."""
    want = f":{port:04X} "
    with open('/proc/net/tcp') as f:
        return any(want in l and l.split()[3] == '0A' for l in f)


def wait_listening(port, deadline=10.0, alive=lambda: True):
    """Polls until 127.0.0.1:`port` listens (see `listening`), or exits when the
    deadline passes or `alive()` turns false (the process that should listen died)."""
    end = time.time() + deadline
    while time.time() < end and alive():
        if listening(port):
            return
        time.sleep(0.01)
    sys.exit(f'nothing listens on {port}')


def serve_forever(port, handle):
    """Accepts on 127.0.0.1:`port` in a background thread, each connection handled by
    `handle(conn)` on a thread of its own."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', port))
    ls.listen(128)

    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def key_file():
    """A fresh random key file, mode 0600; the caller removes it."""
    fd, path = tempfile.mkstemp(prefix='spiped-key.')
    os.write(fd, os.urandom(32))
    os.close(fd)
    return path

"""Helpers shared by the benchmark scripts: ports, readiness and process CPU time."""
import os, socket, sys, time


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

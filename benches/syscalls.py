#!/usr/bin/env python3
"""System calls per connection of a `spiped -d -f`, counted with `strace -f -c`.

    benches/syscalls.py SPIPED [CONNECTIONS]     (default 500)

Runs SPIPED (ours or C's) as `-d -f` under strace, behind Debian's C `spiped -e -f` and
in front of an echo target; makes CONNECTIONS connections one after another (send a
byte, read the echo, close), then again with none, and prints the difference divided by
CONNECTIONS: the calls each connection costs, start-up and exit excluded, in total and
by name. Every thread of the daemon counts (strace -f).
"""
import os, signal, socket, subprocess, sys, tempfile, time

from benchlib import free_port, key_file, serve_forever, wait_listening

C_SPIPED = os.environ.get("C_SPIPED", "/usr/bin/spiped")


def echo(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)


def count(spiped, key, conns):
    """{name: calls} of one daemon life with `conns` connections."""
    target, d, e = free_port(), free_port(), free_port()
    serve_forever(target, echo)
    out = tempfile.mktemp(prefix="strace.")
    dmn = subprocess.Popen(["strace", "-f", "-c", "-o", out, spiped, "-F", "-d", "-f",
                            "-s", f"[127.0.0.1]:{d}", "-t", f"[127.0.0.1]:{target}",
                            "-k", key])
    enc = subprocess.Popen([C_SPIPED, "-F", "-e", "-f", "-s", f"[127.0.0.1]:{e}",
                            "-t", f"[127.0.0.1]:{d}", "-k", key])
    wait_listening(d)
    wait_listening(e)
    for _ in range(conns):
        with socket.create_connection(("127.0.0.1", e)) as c:
            c.sendall(b"x")
            assert c.recv(1) == b"x"
    time.sleep(0.2)
    enc.terminate()
    enc.wait()
    # The daemon itself, not strace (which would detach and go on waiting).
    with open(f"/proc/{dmn.pid}/task/{dmn.pid}/children") as f:
        os.kill(int(f.read().split()[0]), signal.SIGTERM)
    dmn.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
    os.unlink(out)
    return calls


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    spiped = sys.argv[1]
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    key = key_file()
    busy, idle = count(spiped, key, conns), count(spiped, key, 0)
    os.unlink(key)
    per = {n: (busy.get(n, 0) - idle.get(n, 0)) / conns for n in busy}
    print(f"{spiped}: {sum(per.values()):.1f} system calls per -f connection")
    for n, v in sorted(per.items(), key=lambda kv: -kv[1]):
        if v >= 0.05:
            print(f"  {n:16} {v:6.2f}")


main()

#!/usr/bin/env python3
"""Threads of a `spiped -d`, idle and under load.

    benches/threads.py SPIPED [CONNECTIONS] [MEGABYTES]    (defaults 4 and 256)

Starts SPIPED -d (PFS handshakes, as by default) behind Debian's C `spiped -e`, in front
of a sink; prints its thread count 15 s after start with no connection, then the most
threads seen (sampled every 20 ms, with their names) while CONNECTIONS clients each
upload MEGABYTES at once, then the count 15 s after the load ends.
"""
import collections, os, signal, socket, subprocess, sys, threading, time

from benchlib import free_port, key_file, serve_forever

C_SPIPED = os.environ.get("C_SPIPED", "/usr/bin/spiped")


def drain(c):
    with c:
        while c.recv(1 << 20):
            pass


def threads(pid):
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/comm") as f:
            names.append(f.read().strip())
    return names


def upload(port, megabytes):
    chunk = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(megabytes):
            c.sendall(chunk)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    spiped = sys.argv[1]
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    megabytes = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    key = key_file()
    target, d, e = free_port(), free_port(), free_port()
    serve_forever(target, drain)
    dmn = subprocess.Popen([spiped, "-F", "-d", "-s", f"[127.0.0.1]:{d}",
                            "-t", f"[127.0.0.1]:{target}", "-k", key])
    enc = subprocess.Popen([C_SPIPED, "-F", "-e", "-s", f"[127.0.0.1]:{e}",
                            "-t", f"[127.0.0.1]:{d}", "-k", key])
    time.sleep(15)
    print(f"idle, 15 s after start: {len(threads(dmn.pid))} thread(s)")
    clients = [threading.Thread(target=upload, args=(e, megabytes)) for _ in range(conns)]
    for c in clients:
        c.start()
    most, start = [], time.monotonic()
    while any(c.is_alive() for c in clients):
        now = threads(dmn.pid)
        if len(now) > len(most):
            most = now
        time.sleep(0.02)
    named = ", ".join(f"{n} x{k}" for n, k in collections.Counter(most).items())
    took = time.monotonic() - start
    print(f"{conns} uploads of {megabytes} MB in {took:.1f} s: at most {len(most)} threads ({named})")
    time.sleep(15)
    print(f"15 s after the load: {len(threads(dmn.pid))} thread(s)")
    enc.terminate()
    dmn.send_signal(signal.SIGTERM)
    enc.wait()
    dmn.wait()
    os.unlink(key)


main()

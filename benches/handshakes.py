#!/usr/bin/env python3
"""Handshake throughput of an spiped pair under concurrent load.

    handshakes.py SPIPED NAME [FLAGS_E...] [-- FLAGS_D...]   (env SECONDS=5, CLIENTS=4)

Starts `SPIPED -d` and `SPIPED -e FLAGS_E` on loopback TCP with an echo target; CLIENTS
threads each connect through the pair, send one byte, read the echo and close, for
SECONDS. Prints, in spiped-bench.sh's format, NAME_rate (connections per second) and
NAME_cpu_e / NAME_cpu_d (CPU milliseconds per connection of each daemon). Concurrent
clients keep both daemons busy, so the rate measures handshake cost rather than one
connection's latency.
"""
import os, socket, subprocess, sys, tempfile, threading, time

from benchlib import cpu, free_port, wait_port



def main():
    spiped, name = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    flags_e, flags_d = (rest[:rest.index('--')], rest[rest.index('--') + 1:]) if '--' in rest else (rest, [])
    seconds = float(os.environ.get('SECONDS', '5')); clients = int(os.environ.get('CLIENTS', '4'))
    tmp = tempfile.mkdtemp(); key = os.path.join(tmp, 'key')
    with open(key, 'wb') as f: f.write(os.urandom(32))
    os.chmod(key, 0o600)
    echo = socket.socket(); echo.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    echo.bind(('127.0.0.1', 0)); echo.listen(1024); tport = echo.getsockname()[1]
    def serve(c):
        try:
            while True:
                b = c.recv(4096)
                if not b: break
                c.sendall(b)
        except OSError: pass
        c.close()
    def accept_loop():
        while True:
            try: c, _ = echo.accept()
            except OSError: return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=accept_loop, daemon=True).start()
    dport, eport = free_port(), free_port()
    d = subprocess.Popen([spiped, '-d', '-F', '-n', '0', *flags_d, '-s', f'[127.0.0.1]:{dport}', '-t', f'[127.0.0.1]:{tport}', '-k', key], stderr=subprocess.DEVNULL)
    e = subprocess.Popen([spiped, '-e', '-F', '-n', '0', *flags_e, '-s', f'[127.0.0.1]:{eport}', '-t', f'[127.0.0.1]:{dport}', '-k', key], stderr=subprocess.DEVNULL)
    try:
        wait_port(dport, 'handshakes.py'); wait_port(eport, 'handshakes.py')
        counts = [0] * clients; failures = [0]; stop = time.perf_counter() + seconds
        def client(i):
            while time.perf_counter() < stop:
                try:
                    s = socket.create_connection(('127.0.0.1', eport), 10); s.settimeout(10)
                    s.sendall(b'x')
                    if s.recv(1) == b'x': counts[i] += 1
                    else: failures[0] += 1
                    s.close()
                except OSError:
                    failures[0] += 1
        c0 = (cpu(e.pid), cpu(d.pid)); t0 = time.perf_counter()
        ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in ts: t.start()
        for t in ts: t.join()
        dt = time.perf_counter() - t0; c1 = (cpu(e.pid), cpu(d.pid)); n = sum(counts)
        if n == 0 or failures[0] > n // 100:
            sys.exit(f'handshakes.py: {name}: {n} connections, {failures[0]} failures')
        print(f'{name}_rate {n / dt:.6g} conn/s')
        print(f'{name}_cpu_e {(c1[0] - c0[0]) * 1e3 / n:.6g} ms/conn')
        print(f'{name}_cpu_d {(c1[1] - c0[1]) * 1e3 / n:.6g} ms/conn')
    finally:
        for p in (e, d): p.terminate()
        for p in (e, d):
            try: p.wait(5)
            except subprocess.TimeoutExpired: p.kill()
        echo.close()

if __name__ == '__main__':
    main()

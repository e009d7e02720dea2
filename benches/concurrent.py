#!/usr/bin/env python3
"""Aggregate throughput of several simultaneous bulk connections through one spiped pair.

    concurrent.py SPIPED [CONNS=4] [MB_EACH=256]

Starts `SPIPED -d` and `SPIPED -e` on loopback TCP with a sink target, pushes MB_EACH MiB
through each of CONNS connections at once, and prints, in spiped-bench.sh's format:
conc4_MBps (aggregate), conc4_cpu_e and conc4_cpu_d (CPU seconds per GB of each daemon).
"""
import os, socket, subprocess, sys, tempfile, threading, time

from benchlib import cpu, free_port, wait_port



def main():
    spiped = sys.argv[1]; conns = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    each = (int(sys.argv[3]) if len(sys.argv) > 3 else 256) << 20
    tmp = tempfile.mkdtemp(); key = os.path.join(tmp, 'key')
    with open(key, 'wb') as f: f.write(os.urandom(32))
    sink = socket.socket(); sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sink.bind(('127.0.0.1', 0)); sink.listen(64); tport = sink.getsockname()[1]
    received = []
    def drain(c):
        n = 0; buf = bytearray(1 << 20)
        while True:
            k = c.recv_into(buf)
            if not k: break
            n += k
        received.append(n); c.close()
    def accept_loop():
        while True:
            try: c, _ = sink.accept()
            except OSError: return
            threading.Thread(target=drain, args=(c,), daemon=True).start()
    threading.Thread(target=accept_loop, daemon=True).start()
    dport, eport = free_port(), free_port()
    d = subprocess.Popen([spiped, '-d', '-F', '-s', f'[127.0.0.1]:{dport}', '-t', f'[127.0.0.1]:{tport}', '-k', key], stderr=subprocess.DEVNULL)
    e = subprocess.Popen([spiped, '-e', '-F', '-s', f'[127.0.0.1]:{eport}', '-t', f'[127.0.0.1]:{dport}', '-k', key], stderr=subprocess.DEVNULL)
    try:
        wait_port(dport, 'concurrent.py'); wait_port(eport, 'concurrent.py')
        while len(received) < 2: time.sleep(0.01)   # the readiness probes
        received.clear()
        c0 = (cpu(e.pid), cpu(d.pid)); t0 = time.perf_counter()
        def push():
            s = socket.create_connection(('127.0.0.1', eport)); chunk = bytes(1 << 20); left = each
            while left: n = min(left, len(chunk)); s.sendall(chunk[:n]); left -= n
            s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
        ts = [threading.Thread(target=push) for _ in range(conns)]
        for t in ts: t.start()
        for t in ts: t.join()
        end = time.time() + 60
        while len(received) < conns and time.time() < end: time.sleep(0.005)
        dt = time.perf_counter() - t0; c1 = (cpu(e.pid), cpu(d.pid))
        total = sum(received)
        if total != conns * each: sys.exit(f'concurrent.py: sink got {total} bytes, expected {conns * each}')
        gb = total / 1e9
        print(f'conc{conns}_MBps {total / 1e6 / dt:.6g} MB/s')
        print(f'conc{conns}_cpu_e {(c1[0] - c0[0]) / gb:.6g} s/GB')
        print(f'conc{conns}_cpu_d {(c1[1] - c0[1]) / gb:.6g} s/GB')
    finally:
        for p in (e, d): p.terminate()
        for p in (e, d):
            try: p.wait(5)
            except subprocess.TimeoutExpired: p.kill()
        sink.close()

if __name__ == '__main__':
    main()

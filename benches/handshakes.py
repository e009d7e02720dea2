#!/usr/bin/env python3
"""Handshake throughput of an spiped pair under concurrent load.

    handshakes.py SPIPED NAME [FLAGS_E...] [-- FLAGS_D...]   (env SECONDS=5, CLIENTS=4)

Starts `SPIPED -d` and `SPIPED -e FLAGS_E` on loopback TCP in front of the echo target
of benches/connload.rs, whose CLIENTS threads each connect through the pair, send one
byte, read the echo and close, for SECONDS (native code: a Python load would cost more
CPU per connection than the daemons and cap the rate). Prints, in spiped-bench.sh's
format, NAME_rate (connections per second), NAME_cpu_e / NAME_cpu_d (CPU milliseconds
per connection of each daemon) and NAME_cpu_load (of the load generator). Concurrent
clients keep both daemons busy, so the rate measures handshake cost rather than one
connection's latency. CONNLOAD overrides the generator's path.
"""
import os, subprocess, sys, tempfile

from benchlib import cpu, free_port, wait_port


def main():
    spiped, name = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    flags_e, flags_d = (rest[:rest.index('--')], rest[rest.index('--') + 1:]) if '--' in rest else (rest, [])
    seconds = float(os.environ.get('SECONDS', '5')); clients = int(os.environ.get('CLIENTS', '4'))
    tmp = tempfile.mkdtemp(); key = os.path.join(tmp, 'key')
    with open(key, 'wb') as f: f.write(os.urandom(32))
    os.chmod(key, 0o600)
    load = os.environ.get('CONNLOAD') or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target', 'release', 'examples', 'connload')
    if not os.access(load, os.X_OK):
        sys.exit(f'handshakes.py: {load} missing: cargo build --release --example connload')
    tport, dport, eport = free_port(), free_port(), free_port()
    gen = subprocess.Popen([load, str(tport), str(eport), str(clients), str(int(seconds))],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    d = e = None
    try:
        if gen.stdout.readline().strip() != 'ready':
            sys.exit('handshakes.py: connload did not start')
        d = subprocess.Popen([spiped, '-d', '-F', '-n', '0', *flags_d, '-s', f'[127.0.0.1]:{dport}', '-t', f'[127.0.0.1]:{tport}', '-k', key], stderr=subprocess.DEVNULL)
        e = subprocess.Popen([spiped, '-e', '-F', '-n', '0', *flags_e, '-s', f'[127.0.0.1]:{eport}', '-t', f'[127.0.0.1]:{dport}', '-k', key], stderr=subprocess.DEVNULL)
        wait_port(dport, 'handshakes.py'); wait_port(eport, 'handshakes.py')
        c0 = (cpu(e.pid), cpu(d.pid))
        out, _ = gen.communicate('go\n', timeout=seconds + 60)
        c1 = (cpu(e.pid), cpu(d.pid))
        n, failures, dt, load_cpu = out.split()
        n, failures, dt, load_cpu = int(n), int(failures), float(dt), float(load_cpu)
        if n == 0 or failures > n // 100:
            sys.exit(f'handshakes.py: {name}: {n} connections, {failures} failures')
        print(f'{name}_rate {n / dt:.6g} conn/s')
        print(f'{name}_cpu_e {(c1[0] - c0[0]) * 1e3 / n:.6g} ms/conn')
        print(f'{name}_cpu_d {(c1[1] - c0[1]) * 1e3 / n:.6g} ms/conn')
        # The clients and the echo target: what the machine spends outside spiped.
        print(f'{name}_cpu_load {load_cpu * 1e3 / n:.6g} ms/conn')
    finally:
        for p in (e, d, gen):
            if p is None or p.poll() is not None: continue
            p.terminate()
            try: p.wait(5)
            except subprocess.TimeoutExpired: p.kill()

if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""RSS of an idle daemon pair and per open idle connection.

    EXTRA=-f benches/mem.py CONNECTIONS SPIPED [SPIPED...]

For each SPIPED in turn: starts `-d` and `-e` (with EXTRA's options, such as -f) in
front of an echo target, opens CONNECTIONS connections through them (one byte echoed
on each, then left open and idle), and prints each daemon's VmRSS before, and the
growth divided by CONNECTIONS. Give several binaries to alternate them in one run.
"""
import os, sys, socket, subprocess, time, threading, tempfile
def rss(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS:'): return int(l.split()[1])
def echo_server(ls):
    def h(c):
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    while True:
        c,_ = ls.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
def run(binary, n, base):
    d = tempfile.mkdtemp(); key = os.path.join(d,'key'); open(key,'wb').write(os.urandom(32))
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); ls.bind(('127.0.0.1', base)); ls.listen(1024)
    threading.Thread(target=echo_server, args=(ls,), daemon=True).start()
    dp = subprocess.Popen([binary,'-F','-d','-n','1000']+EXTRA+['-s',f'[127.0.0.1]:{base+1}','-t',f'[127.0.0.1]:{base}','-k',key], stderr=subprocess.DEVNULL)
    ep = subprocess.Popen([binary,'-F','-e','-n','1000']+EXTRA+['-s',f'[127.0.0.1]:{base+2}','-t',f'[127.0.0.1]:{base+1}','-k',key], stderr=subprocess.DEVNULL)
    time.sleep(1)
    b = (rss(ep.pid), rss(dp.pid)); conns=[]
    for i in range(n):
        s = socket.create_connection(('127.0.0.1', base+2)); s.sendall(b'x'); assert s.recv(1)==b'x'; conns.append(s)
    time.sleep(1)
    a = (rss(ep.pid), rss(dp.pid))
    print(f"{binary}: idle e={b[0]} d={b[1]} KiB; per conn e={(a[0]-b[0])/n:.2f} d={(a[1]-b[1])/n:.2f} KiB")
    for s in conns: s.close()
    ep.kill(); dp.kill(); ls.close()
EXTRA = os.environ.get('EXTRA','').split()
import resource; resource.setrlimit(resource.RLIMIT_NOFILE,(8192,8192))
n = int(sys.argv[1]); import random; base=random.randint(20000,30000)
for i, b in enumerate(sys.argv[2:]):
    run(b, n, base + 10*i)

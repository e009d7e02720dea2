#!/usr/bin/env bash
# Side-by-side benchmark of this spiped against Debian's C spiped, in one run on one machine.
#
#   benches/compare.sh [ROUNDS]        (default 2 rounds; each round runs C, then ours)
#
# Each round runs the shared harness (../shared/bench/spiped-bench.sh: bulk throughput and
# CPU per GB over TCP and UNIX, spipe, handshake rates, round-trip latency, memory) and
# benches/concurrent.py (aggregate throughput of 4 simultaneous bulk connections) and
# benches/handshakes.py (connections per second with 4 concurrent clients: PFS for both,
# and --x25519 for ours) for both implementations, alternating, then prints every
# figure's median for each side and the ratio ours/C. Environment variables of spiped-bench.sh (BYTES, CONNS, RTTS, ...)
# pass through; BENCH_SCRIPT overrides the harness's path, C_SPIPED/C_SPIPE the C binaries.
# The machine is shared and noisy: compare ratios from one run, never single figures.
set -euo pipefail
rounds=${1:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_SCRIPT:-$root/../shared/bench/spiped-bench.sh}
c_spiped=${C_SPIPED:-/usr/bin/spiped}; c_spipe=${C_SPIPE:-/usr/bin/spipe}
[ -f "$bench" ] || { echo "compare.sh: harness not found: $bench (set BENCH_SCRIPT)" >&2; exit 2; }
for b in "$c_spiped" "$c_spipe"; do
  [ -x "$b" ] || { echo "compare.sh: C binary missing: $b (apt-get install spiped)" >&2; exit 2; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin spiped --example connload
ours=$root/target/release
ln -sf spiped "$ours/spipe"
out=$(mktemp -d /tmp/spiped-compare.XXXXXX)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for side in c ours; do
    if [ "$side" = c ]; then sd=$c_spiped; sp=$c_spipe; else sd=$ours/spiped; sp=$ours/spipe; fi
    echo "compare.sh: round $r/$rounds: $side" >&2
    bash "$bench" "$sd" "$sp" > "$out/$side.$r"
    python3 "$root/benches/concurrent.py" "$sd" >> "$out/$side.$r"
    python3 "$root/benches/handshakes.py" "$sd" hs_pfs >> "$out/$side.$r"
    if [ "$side" = ours ]; then
      python3 "$root/benches/handshakes.py" "$sd" hs_x25519 --x25519 >> "$out/$side.$r"
    fi
  done
done
echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $rounds rounds"
python3 - "$out" <<'PY'
import sys, os, statistics
d = sys.argv[1]; vals = {}; order = []; units = {}
for fn in sorted(os.listdir(d)):
    side = fn.split('.')[0]
    for line in open(os.path.join(d, fn)):
        parts = line.split()
        if len(parts) != 3: continue
        name, v, unit = parts
        if name not in units: order.append(name); units[name] = unit
        vals.setdefault((name, side), []).append(float(v))
print(f"{'figure':34} {'C':>12} {'ours':>12} {'ours/C':>8}  unit")
for name in order:
    c, o = vals.get((name, 'c')), vals.get((name, 'ours'))
    if not c or not o: continue
    cm, om = statistics.median(c), statistics.median(o)
    ratio = f"{om / cm:8.2f}" if cm else "       -"
    print(f"{name:34} {cm:12.4g} {om:12.4g} {ratio}  {units[name]}")
x, c = vals.get(('hs_x25519_rate', 'ours')), vals.get(('hs_pfs_rate', 'c'))
if x and c:
    xm, cm = statistics.median(x), statistics.median(c)
    print(f"{'hs_x25519_rate (ours) vs C hs_pfs':34} {cm:12.4g} {xm:12.4g} {xm / cm:8.2f}  conn/s")
PY

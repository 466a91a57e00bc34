#!/usr/bin/env bash
# Runs the loopback reverse-proxy benchmark (bench/peers.sh, described in bench/peers.md)
# with Keel as a contestant next to HAProxy and nginx, and writes the table it prints,
# with the machine, the tool versions, the Keel commit and the exact command, to
# bench/runs/DATE-HOST/DATE-peers-PRESET.md (HOST: KEEL_BENCH_HOST, else the CPU family and
# its L2 per core, e.g. epyc-512k-l2). BENCHMARKS.md's table for that host is then
# updated by hand from it.
#
#   bench/peers-keel.sh stable     # --preset stable: 1 thread, pinned, 30 x 1 s, 64 conns, A/A control
#   bench/peers-keel.sh survey     # --preset survey: 1 and 2 threads, 64 and 256 conns, 3 x 5 s
#   bench/peers-keel.sh stable -c "64 256" -r 20    # extra arguments go to peers.sh
#
# Keel is the dist build (dist/build.sh: fat LTO and the committed PGO profile,
# pgo/README.md); KEEL_BIN picks another binary. With a build in target/pgo
# (bench/pgo-build.sh, a fresh profile of the same source; KEEL_PGO_BIN overrides the
# path), that runs next to it as keel-pgo-tN: the gap between the two shows how far the
# committed profile has gone stale.
#
# Needs: haproxy, nginx, wrk (apt-get install -y haproxy nginx wrk) and the dist build
# (CARGO_TARGET_DIR is honoured). peers.sh bounds every run (it refuses plans over
# 290 s) and only uses 127.0.0.1. PEERS_SH overrides its path.
set -euo pipefail
preset=${1:?usage: peers-keel.sh stable|survey [peers.sh args...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_SH:-$root/bench/peers.sh}
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
[ -x "$peers" ] || { echo "peers-keel.sh: peers.sh not found at $peers (set PEERS_SH)" >&2; exit 2; }
[ -x "$keel" ] || { echo "peers-keel.sh: no dist build at $keel (dist/build.sh)" >&2; exit 2; }
export KEEL_BIN=$keel

# The freshly profiled build (bench/pgo-build.sh) runs as a second Keel contestant when it exists.
pgo=${KEEL_PGO_BIN:-$root/target/pgo/dist/keel}
pgo_commit=$(cat "$(dirname "$pgo")/../COMMIT" 2>/dev/null || echo unknown)
case "$preset" in
  stable) args=(--preset stable --peer "keel-t1:18110:$root/bench/keel-peer.sh 1")
          if [ -x "$pgo" ]; then
            args+=(--peer "keel-pgo-t1:18111:KEEL_BIN=$pgo $root/bench/keel-peer.sh 1")
          fi ;;
  survey) args=(--preset survey --peer "keel-t1:18110:$root/bench/keel-peer.sh 1"
                --peer "keel-t2:18111:$root/bench/keel-peer.sh 2")
          # Two more contestants make the plan ~360 s, over peers.sh's default bound.
          if [ -x "$pgo" ]; then
            args+=(--peer "keel-pgo-t1:18112:KEEL_BIN=$pgo $root/bench/keel-peer.sh 1"
                   --peer "keel-pgo-t2:18113:KEEL_BIN=$pgo $root/bench/keel-peer.sh 2"
                   --max-seconds 420)
          fi ;;
  *) echo "peers-keel.sh: preset must be stable or survey" >&2; exit 2 ;;
esac
outdir=$(mktemp -d /tmp/peers-keel.XXXXXX)
command=("$peers" "${args[@]}" "$@" --outdir "$outdir")
printf -v shown '%q ' "${command[@]}"
echo "peers-keel.sh: $shown"
status=0
"${command[@]}" 2>&1 | tee "$outdir/console.txt" || status=$?

[ -s "$outdir/summary.txt" ] || { echo "peers-keel.sh: no summary (exit $status); see $outdir" >&2; exit 1; }

# Median per-round ratios of Keel (and of the A/A control, the noise floor) against each
# peer, for rps and for p99 latency. One round's p99 at 256 connections is close to a
# lottery on this shared host: a stall of a few milliseconds delays every in-flight
# request, and a 1 s round holds zero, one or two of them. So next to the median the
# table counts the rounds in which the row's p99 was the higher one, with a two-sided
# sign test: p well above 0.05 means the rounds do not tell the two tails apart.
ratios() {
  awk -F, '
    function med(a, m,   i, j, t) {
      for (i = 2; i <= m; i++) { t = a[i]; j = i - 1; while (j > 0 && a[j] > t) { a[j+1] = a[j]; j-- } a[j+1] = t }
      return (m % 2) ? a[(m + 1) / 2] : (a[m/2] + a[m/2 + 1]) / 2
    }
    # two-sided binomial sign test: h of m untied rounds went one way
    function sign_p(h, m,   k, i, c, s) {
      if (m == 0) return 1
      k = (h < m - h) ? h : m - h; c = 1; s = 1
      for (i = 1; i <= k; i++) { c = c * (m - i + 1) / i; s += c }
      s = 2 * s / 2 ^ m
      return s > 1 ? 1 : s
    }
    NR > 1 && NF >= 12 { rps[$2, $3, $1] = $4; p99[$2, $3, $1] = $7; conns[$2] = 1; names[$3] = 1; rounds[$1] = 1 }
    END {
      printf "| conns | row | peer | rps row/peer | p99 row/peer | p99 higher in | sign test p | rounds |\n|---|---|---|---|---|---|---|---|\n"
      for (c in conns) for (k in names) {
        if (k !~ /^keel/ && k !~ /-aa$/) continue
        for (p in names) {
          if (p ~ /^keel/ || p ~ /-aa$/ || p == "direct") continue
          n = 0; higher = 0; untied = 0; delete R; delete P
          for (r in rounds) if (((c, k, r) in rps) && ((c, p, r) in rps) && rps[c, p, r] > 0 && p99[c, p, r] > 0) {
            n++; R[n] = rps[c, k, r] / rps[c, p, r]; P[n] = p99[c, k, r] / p99[c, p, r]
            if (P[n] != 1) untied++
            if (P[n] > 1) higher++
          }
          if (n) printf "| %s | %s | %s | %.3f | %.3f | %d of %d | %.2f | %d |\n", c, k, p, med(R, n), med(P, n), higher, untied, sign_p(higher, untied), n
        }
      }
    }' "$outdir/runs.csv" | { read -r h; read -r s; echo "$h"; echo "$s"; sort -t'|' -k2,2n -k3,3 -k4,4; }
}

section=$outdir/section.md
{
  echo "### \`$preset\` preset — $(date -u +%Y-%m-%d)"
  echo
  echo "Command (from the repository root, dist build of commit \`$(git -C "$root" rev-parse --short HEAD)\` with its committed PGO profile$(git -C "$root" diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' plus uncommitted changes')$([ ! -x "$pgo" ] || echo "; \`keel-pgo-*\` is the same source built by \`bench/pgo-build.sh\` at \`$pgo_commit\`")):"
  echo
  echo '```'
  echo "bench/peers-keel.sh $preset $*"
  echo "# which runs:"
  echo "$shown"
  echo '```'
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) vCPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r); load average at the start: $(grep -m1 '^kernel' "$outdir/meta.txt" | sed 's/.*load: //') (the box is shared)."
  echo "Tools: $(grep -E '^(wrk|haproxy|nginx):' "$outdir/meta.txt" | sed -e 's/  */ /g' -e 's/ Copyright.*//' -e 's/ - https.*//' | paste -sd ';' - | sed 's/;/; /g')."
  echo "Exit status of peers.sh: $status (0 = every run clean)."
  echo
  echo "Keel, and the A/A control when it ran, against each peer: median of per-round ratios (rps above 1 and p99 below 1 favour the row), and in how many rounds the row's p99 was the higher:"
  echo
  ratios
  echo
  echo "peers.sh summary:"
  echo
  echo '```'
  cat "$outdir/summary.txt"
  echo '```'
} > "$section"

# One directory per day and host, as ripgrep's benchsuite keeps its runs.
l2=$(tr 'A-Z' 'a-z' < /sys/devices/system/cpu/cpu0/cache/index2/size 2>/dev/null || echo unknown)
family=$(grep -m1 'model name' /proc/cpuinfo | grep -oiE 'epyc|xeon|ryzen|core|neoverse' | head -1 | tr 'A-Z' 'a-z' || true)
host=${KEEL_BENCH_HOST:-${family:-cpu}-$l2-l2}
run_dir=$root/bench/runs/$(date -u +%Y-%m-%d)-$host
mkdir -p "$run_dir"
doc=$run_dir/$(date -u +%Y-%m-%d)-peers-$preset.md
cp "$section" "$doc"
echo "peers-keel.sh: wrote $doc (raw data in $outdir); update the $host table in BENCHMARKS.md from it"
exit "$status"

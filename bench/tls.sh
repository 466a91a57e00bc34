#!/usr/bin/env bash
# TLS termination: Keel against HAProxy and nginx, one run, the same certificates in front
# of the same backends (bench/backends.sh's three loopback nginx answering `200 ok`).
#
#   bench/tls.sh [--duration 8] [--batch 500] [--keel PATH] [--no-testssl] [--pin split]
#
# The script makes two certificates for bench.keel.test with openssl, ECDSA P-256 and
# RSA 2048 (self-signed, 30 days), and every contestant serves both, each on its own
# port, with one worker/thread (Keel `worker_threads = 1`, HAProxy `nbthread 1`, nginx
# `worker_processes 1`), ALPN h2 + http/1.1, keep-alive to the backends, no access log.
# TLS settings are each one's defaults, except that nginx 1.22 is given
# `ssl_protocols TLSv1.2 TLSv1.3` (its default lacks TLS 1.3, which Keel and HAProxy
# negotiate): every measured handshake is TLS 1.3.
#
# (a) keep-alive HTTPS requests/s: wrk -t1 -c64 and -c256, D s each after a 1 s warm-up,
#     ECDSA certificate.
# (b) full handshakes/s: h2load --h1 with ONE request per client (`-n B -c B`), in batches
#     of B clients for D s per contestant and key type. Not `wrk -H "Connection: close"`
#     nor h2load's reconnects: both resume the TLS session on every reconnect (nginx's
#     $ssl_session_reused said 1,680 of 1,684), which measures abbreviated handshakes.
#     A new h2load client has no session to resume, so each request is a full
#     handshake; Keel's keel_tls_resumptions_total is printed to show it stayed 0.
#     handshakes/s = clients served / the batches' summed "finished in" time.
# (c) HTTP/2 over TLS: h2load -c 32 -m 10 -D D (ALPN h2), ECDSA certificate.
# Then testssl.sh (Debian package testssl.sh) against each contestant's RSA port with its
# default TLS settings (for nginx a third port without `ssl_protocols`), the three runs
# side by side: protocols, cipher categories, forward secrecy, server preferences and
# defaults, headers and vulnerabilities (client simulation left out: minutes on a loaded
# machine). Findings of severity LOW and above are listed; those about the self-signed test
# certificate (chain of trust, revocation, CAA), alike for all, are counted apart. Full
# output is kept in the run dir.
#
# Keel is target/release/keel (cargo build --release -p keel), or KEEL_BIN / --keel.
# Bounded: 3 contestants x ((a) 2 x (1+D) s + (b) 2 x D s + (c) (1+D) s) ~ 3 min with
# D = 8, plus testssl (a few minutes, the three at once; --no-testssl skips it). Every
# process is started by this script and stopped on exit; only 127.0.0.1 is used.
# Requires: openssl, nginx, haproxy, wrk, h2load, curl, ss, awk; testssl (optional).
# Ports: 18160-18167 (contestants, Keel's admin), 18170-18172 (backends). One run on a shared 2-core machine: the
# load generator, the proxy and the backends share the cores, so figures are rough;
# compare ratios taken in the same run only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=8 batch=500 testssl=1 pin=none
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/keel}
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --keel) keel=$2; shift 2 ;;
    --no-testssl) testssl=0; shift ;;
    --pin) pin=$2; shift 2 ;;
    *) echo "tls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$duration" -ge 1 ] && [ "$duration" -le 10 ] || { echo "tls.sh: --duration is 1..10 seconds" >&2; exit 2; }
[ "$batch" -ge 1 ] && [ "$batch" -le 2000 ] || { echo "tls.sh: --batch is 1..2000 clients" >&2; exit 2; }
for tool in openssl nginx haproxy wrk h2load curl ss awk; do
  command -v "$tool" >/dev/null || { echo "tls.sh: $tool is needed" >&2; exit 1; }
done
[ -x "$keel" ] || { echo "tls.sh: no keel binary at $keel (cargo build --release -p keel, or KEEL_BIN)" >&2; exit 1; }
if [ "$testssl" = 1 ] && ! command -v testssl >/dev/null; then
  echo "tls.sh: testssl not found (apt-get install testssl.sh); skipping it" >&2; testssl=0
fi
# --pin split: the proxy on CPU 1, the load generator and the backends on CPU 0.
lb=() gen=() testssl_pids=()
case $pin in
  none) ;;
  split) lb=(taskset -c 1) gen=(taskset -c 0) ;;
  *) echo "tls.sh: --pin is none or split" >&2; exit 2 ;;
esac

keel_ec=18160 keel_rsa=18161 keel_admin=18162
haproxy_ec=18163 haproxy_rsa=18164 nginx_ec=18165 nginx_rsa=18166 nginx_defaults=18167
ports="$keel_ec $keel_rsa $keel_admin $haproxy_ec $haproxy_rsa $nginx_ec $nginx_rsa $nginx_defaults"
dir=$(mktemp -d /tmp/keel-tls-bench.XXXXXX)
# shellcheck source=bench/backends.sh
. "$root/bench/backends.sh"   # bench_start_backends, $pids, the cleanup trap
# Its backends on ports of this script's own, so that it can run beside the profilers.
bench_ports="18170 18171 18172" bench_keel_port=$keel_ec
bench_check_ports tls.sh
for p in $ports; do
  [ -z "$(ss -Htln "sport = :$p")" ] || { echo "tls.sh: port $p is in use" >&2; exit 1; }
done
temp_paths() { echo "client_body_temp_path $1/b; proxy_temp_path $1/p; fastcgi_temp_path $1/f; uwsgi_temp_path $1/u; scgi_temp_path $1/s;"; }
host=bench.keel.test

# ---------------------------------------------------------------- certificates
for kind in ec rsa; do
  case $kind in
    ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -days 365 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" -keyout "$dir/$kind.key" -out "$dir/$kind.pem" 2>/dev/null
  cat "$dir/$kind.pem" "$dir/$kind.key" > "$dir/$kind.haproxy.pem"
done

# ---------------------------------------------------------------- backends and contestants
bench_start_backends "$dir" "${gen[@]}"
IFS=, read -r -a backend_list <<< "$backends"

{
  echo "[listeners.https-ec]"
  echo "addr = \"127.0.0.1:$keel_ec\""
  echo "backlog = 4096"
  echo 'tls = { certificates = ["ec"] }'
  echo "[listeners.https-rsa]"
  echo "addr = \"127.0.0.1:$keel_rsa\""
  echo "backlog = 4096"
  echo 'tls = { certificates = ["rsa"] }'
  echo "[admin]"
  echo "addr = \"127.0.0.1:$keel_admin\""
  echo "[server]"
  echo "worker_threads = 1"
  for kind in ec rsa; do
    echo "[certificates.$kind]"
    echo "cert = \"$dir/$kind.pem\""
    echo "key = \"$dir/$kind.key\""
  done
  echo "[services.bench]"
  echo "allow_no_identity = true"
  echo "[pools.bench]"
  echo "service = \"bench\""
  printf 'backends = ['
  sep=""
  for b in "${backend_list[@]}"; do printf '%s{ addr = "%s" }' "$sep" "$b"; sep=", "; done
  echo "]"
  echo "[[routes]]"
  echo "name = \"all\""
  echo "service = \"bench\""
  echo "pool = \"bench\""
} > "$dir/keel.toml"
KEEL_STATE_DIR=$dir/keel-state "${lb[@]}" "$keel" --log warn serve --config "$dir/keel.toml" \
  > "$dir/keel.log" 2>&1 & pids+=($!)

{
  echo "global"
  echo "    nbthread 1"
  echo "    maxconn 8000"
  echo "defaults"
  echo "    mode http"
  echo "    timeout connect 2s"
  echo "    timeout client 60s"
  echo "    timeout server 60s"
  echo "    timeout http-keep-alive 60s"
  echo "    option http-keep-alive"
  echo "    http-reuse always"
  for kind in ec rsa; do
    port=$([ $kind = ec ] && echo $haproxy_ec || echo $haproxy_rsa)
    echo "frontend fe-$kind"
    echo "    bind 127.0.0.1:$port ssl crt $dir/$kind.haproxy.pem alpn h2,http/1.1 backlog 4096"
    echo "    default_backend be"
  done
  echo "backend be"
  echo "    balance roundrobin"
  i=0
  for b in "${backend_list[@]}"; do i=$((i + 1)); echo "    server b$i $b"; done
} > "$dir/haproxy.cfg"
"${lb[@]}" haproxy -f "$dir/haproxy.cfg" -db > "$dir/haproxy.log" 2>&1 & pids+=($!)

mkdir -p "$dir/nginx"
{
  echo "worker_processes 1; daemon off; pid $dir/nginx/nginx.pid; error_log $dir/nginx/error.log warn;"
  echo "worker_rlimit_nofile 40000;"
  echo "events { worker_connections 16384; }"
  echo "http {"
  echo "  access_log off; $(temp_paths "$dir/nginx")"
  echo "  keepalive_requests 10000000; keepalive_timeout 120s;"
  echo "  upstream be {"
  for b in "${backend_list[@]}"; do echo "    server $b;"; done
  echo "    keepalive 1024; keepalive_requests 10000000; keepalive_timeout 120s;"
  echo "  }"
  for kind in ec rsa; do
    port=$([ $kind = ec ] && echo $nginx_ec || echo $nginx_rsa)
    echo "  server {"
    echo "    listen 127.0.0.1:$port ssl http2 backlog=4096;"
    echo "    ssl_protocols TLSv1.2 TLSv1.3;"
    echo "    ssl_certificate $dir/$kind.pem; ssl_certificate_key $dir/$kind.key;"
    echo "    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
    echo "  }"
  done
  echo "  # nginx's own TLS defaults (protocols, ciphers), for testssl only"
  echo "  server {"
  echo "    listen 127.0.0.1:$nginx_defaults ssl http2;"
  echo "    ssl_certificate $dir/rsa.pem; ssl_certificate_key $dir/rsa.key;"
  echo "    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
  echo "  }"
  echo "}"
} > "$dir/nginx/nginx.conf"
"${lb[@]}" nginx -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" & pids+=($!)

for p in $keel_ec $keel_rsa $haproxy_ec $haproxy_rsa $nginx_ec $nginx_rsa $nginx_defaults; do
  for _ in $(seq 150); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "https://127.0.0.1:$p/" || true)" = 200 ] && break
    sleep 0.1
  done
done

# ---------------------------------------------------------------- the run
contestants="keel:$keel_ec:$keel_rsa haproxy:$haproxy_ec:$haproxy_rsa nginx:$nginx_ec:$nginx_rsa"
results=$dir/results.txt
: > "$results"
record() { echo "$1 $2" >> "$results"; }   # key value
value() { awk -v k="$1" '$1 == k { print $2 }' "$results"; }
ratio() { awk -v a="$(value "$1")" -v b="$(value "$2")" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo "tls.sh: run dir $dir" >&2
negotiated() { # port -> "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519 h2"
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername "$host" -alpn h2,http/1.1 2>/dev/null \
    | awk '/^New, / { v = $2; sub(",", "", v); c = $NF } /^Server Temp Key:/ { k = $4; sub(",", "", k) } /^ALPN protocol:/ { a = $3 }
           END { printf "%s %s %s %s\n", v, c, k, a }'
}
wrk_rps() { # port conns
  "${gen[@]}" timeout $((duration + 20)) wrk -t1 -c"$2" -d1s "https://127.0.0.1:$1/" > /dev/null 2>&1 || true
  "${gen[@]}" timeout $((duration + 20)) wrk -t1 -c"$2" -d"${duration}s" "https://127.0.0.1:$1/" 2> /dev/null \
    | awk '/^Requests\/sec:/ { r = $2 } /Non-2xx|Socket errors/ { e = e $0 " " } END { printf "%.0f %s\n", r, (e == "" ? "-" : e) }'
}
handshakes() { # port -> "handshakes/s clients failed"
  local end=$((SECONDS + duration)) out ok=0 failed=0 ms=0
  while [ $SECONDS -lt $end ]; do
    out=$("${gen[@]}" timeout 30 h2load --h1 -n "$batch" -c "$batch" "https://127.0.0.1:$1/" 2>&1 || true)
    ok=$((ok + $(awk '/^requests:/ { print $8 + 0 }' <<< "$out")))
    failed=$((failed + $(awk '/^requests:/ { print $10 + 0 }' <<< "$out")))
    ms=$((ms + $(awk '/^finished in/ { t = $3; sub(",", "", t); if (t ~ /ms$/) { sub("ms", "", t); v = t } else if (t ~ /us$/) { sub("us", "", t); v = t / 1000 } else { sub("s", "", t); v = t * 1000 } printf "%d", v + 0.5 }' <<< "$out")))
  done
  awk -v ok=$ok -v f=$failed -v ms=$ms 'BEGIN { printf "%.0f %d %d\n", (ms > 0 ? ok * 1000 / ms : 0), ok, f }'
}
h2_rps() { # port
  "${gen[@]}" timeout 20 h2load -c 32 -m 10 -D 1 "https://127.0.0.1:$1/" > /dev/null 2>&1 || true
  "${gen[@]}" timeout $((duration + 20)) h2load -c 32 -m 10 -D "$duration" "https://127.0.0.1:$1/" 2>&1 \
    | awk '/^finished in/ { r = $4; gsub(",", "", r) } /^requests:/ { f = $10 } /^Application protocol:/ { p = $3 }
           END { printf "%.0f %s %s\n", r, f, p }'
}
keel_metric() { curl -s --max-time 5 "http://127.0.0.1:$keel_admin/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }

echo "# TLS termination: Keel, HAProxy, nginx ($(date -u +%FT%TZ))"
echo
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), load before the run $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- keel: $keel ($(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')); $(haproxy -v 2>&1 | head -n1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | cut -d' ' -f3); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2); h2load $(h2load --version 2>&1 | awk '{ print $2 }'); $(openssl version | cut -d' ' -f1-2)"
echo "- one worker each, pin=$pin, D=${duration}s per point, handshake batches of $batch clients"
echo
echo "## Negotiated (openssl s_client, ALPN h2,http/1.1)"
echo
echo "| contestant | ECDSA port | RSA port |"
echo "|---|---|---|"
for c in $contestants; do
  IFS=: read -r name ec rsa <<< "$c"
  echo "| $name | $(negotiated "$ec") | $(negotiated "$rsa") |"
done

echo
echo "## (a) keep-alive HTTPS requests/s (wrk -t1, ECDSA P-256)"
echo
echo "| contestant | 64 conns | 256 conns | errors |"
echo "|---|---|---|---|"
for c in $contestants; do
  IFS=: read -r name ec _ <<< "$c"
  read -r r64 e64 <<< "$(wrk_rps "$ec" 64)"
  read -r r256 e256 <<< "$(wrk_rps "$ec" 256)"
  record "$name.ka64" "$r64"; record "$name.ka256" "$r256"
  echo "| $name | $r64 | $r256 | 64: $e64; 256: $e256 |"
done

echo
echo "## (b) full handshakes/s (h2load --h1, one request per client, batches of $batch)"
echo
resumed_before=$(keel_metric keel_tls_resumptions_total)
echo "| contestant | ECDSA P-256 | RSA 2048 | clients served (ECDSA / RSA) | failed |"
echo "|---|---|---|---|---|"
for c in $contestants; do
  IFS=: read -r name ec rsa <<< "$c"
  read -r hs_ec ok_ec f_ec <<< "$(handshakes "$ec")"
  read -r hs_rsa ok_rsa f_rsa <<< "$(handshakes "$rsa")"
  record "$name.hs_ec" "$hs_ec"; record "$name.hs_rsa" "$hs_rsa"
  echo "| $name | $hs_ec | $hs_rsa | $ok_ec / $ok_rsa | $f_ec / $f_rsa |"
done
echo
echo "Keel's own counts over the whole run: keel_tls_handshakes_total $(keel_metric keel_tls_handshakes_total), \
keel_tls_resumptions_total $(keel_metric keel_tls_resumptions_total) (before (b): $resumed_before), \
keel_tls_handshake_failures_total $(keel_metric keel_tls_handshake_failures_total)."

echo
echo "## (c) HTTP/2 over TLS (h2load -c 32 -m 10, ECDSA P-256)"
echo
echo "| contestant | requests/s | failed | protocol |"
echo "|---|---|---|---|"
for c in $contestants; do
  IFS=: read -r name ec _ <<< "$c"
  read -r rps failed proto <<< "$(h2_rps "$ec")"
  record "$name.h2" "$rps"
  echo "| $name | $rps | $failed | $proto |"
done

echo
echo "## Ratios (Keel / peer, this run)"
echo
echo "| point | Keel / HAProxy | Keel / nginx |"
echo "|---|---|---|"
for point in ka64:"(a) keep-alive, 64 conns" ka256:"(a) keep-alive, 256 conns" hs_ec:"(b) full handshakes, ECDSA P-256" \
             hs_rsa:"(b) full handshakes, RSA 2048" h2:"(c) h2 over TLS"; do
  key=${point%%:*} label=${point#*:}
  echo "| $label | $(ratio keel.$key haproxy.$key) | $(ratio keel.$key nginx.$key) |"
done

if [ "$testssl" = 1 ]; then
  echo
  echo "## testssl.sh $(testssl --version 2>/dev/null | grep -o '[0-9][0-9.]*[0-9]' | head -n1), RSA 2048, each contestant's default TLS settings"
  echo
  for target in keel:$keel_rsa haproxy:$haproxy_rsa nginx:$nginx_defaults; do
    name=${target%%:*} port=${target##*:}
    timeout 600 testssl --quiet --color 0 --warnings off --sneaky --protocols --std --fs \
      --server-preference --server-defaults --header --vulnerable \
      --jsonfile "$dir/testssl-$name.json" "127.0.0.1:$port" > "$dir/testssl-$name.txt" 2>&1 &
    testssl_pids+=($!)
  done
  wait "${testssl_pids[@]}" 2>/dev/null || true
  echo "Findings of severity LOW and above (the test certificate's own findings counted apart):"
  for name in keel haproxy nginx; do
    json=$dir/testssl-$name.json
    echo
    if [ ! -s "$json" ]; then echo "- **$name**: no JSON (see $dir/testssl-$name.txt)"; continue; fi
    # testssl's flat JSON: one field per line; id, severity, finding in that order.
    awk -F'"' -v name="$name" '/"id"/ { id = $4 } /"severity"/ { sev = $4 } /"finding"/ { f = $4
        if (sev !~ /^(LOW|MEDIUM|HIGH|CRITICAL)$/) next
        if (id ~ /^(cert_|DNS_CAA)/) { certs++; next }
        printf "  - %s `%s`: %s\n", sev, id, f }
      END { printf "- **%s**: %d finding(s) about the self-signed test certificate, and:\n", name, certs }' "$json" \
      | sort -r | uniq
  done
fi
echo
echo "One run on a shared 2-core machine: load generator, proxy and backends share the cores (other"
echo "builds may be running), so the figures are rough; compare ratios within this run only."

#!/usr/bin/env python3
"""Client side of bench/memory.sh: holds many client connections open on several
loopback proxies at once and reports each proxy's resident memory (VmRSS, summed over
its process tree) before, at the peak, and after the connections close.

  memory_client.py --mode idle|partial --conns N --settle S NAME:PORT:PID [...]

Modes:
  idle     each connection sends one complete GET, reads the whole response, and then
           stays open as an idle keep-alive connection (a browser between clicks).
  partial  each connection sends the first part of a request head and nothing more
           (a slow client, or one still typing its headers).

Prints one machine-readable line per proxy:
  ROW name mode conns opened start_kb peak_kb after3_kb settled_kb settle_s anon_start_kb anon_settled_kb half_opened half_kb
where the *_kb are VmRSS and anon_* RssAnon (the heap, stacks and other private memory,
without the binary's own pages that the wave's code paths brought in: those are the
file's, shared, and given back by the kernel whenever it needs them).
half_kb is VmRSS once the first half of the connections (half_opened of them) reached their
state; (peak_kb - half_kb) / (opened - half_opened) is what one more connection costs.
Only 127.0.0.1 is ever connected to; every wait is bounded.
"""

import argparse
import os
import socket
import sys
import time

# Longest wait for all connections of one proxy to reach their state (seconds).
ESTABLISH_TIMEOUT_S = 30.0
# Pause after the last connection reached its state, so the proxy has read it (seconds).
QUIESCE_S = 1.0
# Pause after closing, before the first "after" reading (seconds).
AFTER_CLOSE_S = 3.0
# Most connections per proxy this client accepts.
MAX_CONNS = 20000

PARTIAL_HEAD = (
    b"GET /memory-bench HTTP/1.1\r\n"
    b"Host: bench.example\r\n"
    b"User-Agent: memory-bench/1\r\n"
    b"Accept: */*\r\n"
)


FULL_REQUEST = PARTIAL_HEAD + b"\r\n"


def tree_pids(root):
    """`root` and every descendant, from /proc/*/stat parent links."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def rss_kb(root, field="VmRSS"):
    """`field` of /proc/PID/status (VmRSS, RssAnon) in kB summed over `root`'s process
    tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def read_response(sock):
    """Reads one whole response from a blocking socket; returns its first bytes."""
    got = b""
    while not response_complete(got):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the proxy before the response ended")
        got += chunk
    return got[:40]


def response_complete(data):
    """Whether `data` holds one whole response (Content-Length or chunked framing)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    body = data[end + 4:]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return len(body) >= int(value.strip())
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return True


def open_all(port, mode, count, deadline):
    """Opens `count` connections to 127.0.0.1:port one after the other and brings each
    into `mode`'s state before opening the next, as clients arriving over time would:
    at most one request is in flight, so what is measured is what the proxy holds for
    connections that wait, not the high-water mark of many requests at once.
    Returns (sockets, how many reached the state); the caller closes the sockets."""
    payload = FULL_REQUEST if mode == "idle" else PARTIAL_HEAD
    socks, reached = [], 0
    for _ in range(count):
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"memory_client: :{port}: out of time after {len(socks)} connections", file=sys.stderr)
            break
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(left)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(payload)
            if mode == "idle":
                first = read_response(sock)
                if not first.startswith(b"HTTP/1.1 200"):
                    print(f"memory_client: :{port} answered {first!r}", file=sys.stderr)
                    socks.append(sock)
                    continue
            reached += 1
        except OSError as error:
            print(f"memory_client: :{port}: {error}", file=sys.stderr)
        socks.append(sock)
    return socks, reached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("idle", "partial"), required=True)
    parser.add_argument("--conns", type=int, default=3000)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after close for the last reading")
    parser.add_argument("targets", nargs="+", help="NAME:PORT:PID")
    args = parser.parse_args()
    if not 1 <= args.conns <= MAX_CONNS:
        parser.error(f"--conns must be 1..{MAX_CONNS}")
    targets = []
    for spec in args.targets:
        name, port, pid = spec.split(":")
        targets.append((name, int(port), int(pid)))

    start = {name: rss_kb(pid) for name, _, pid in targets}
    anon_start = {name: rss_kb(pid, "RssAnon") for name, _, pid in targets}
    held, half, peak, opened, opened_half = {}, {}, {}, {}, {}
    # One proxy at a time, so that each gets the whole machine while its connections open.
    # In two halves, with a reading after each: the second half's growth divided by its
    # connections is what one more connection costs, without what the first ones paid
    # once (allocator pages, buffers of the connections still busy while others opened).
    for name, port, pid in targets:
        deadline = time.monotonic() + ESTABLISH_TIMEOUT_S
        first = args.conns // 2
        socks, reached = open_all(port, args.mode, first, deadline)
        time.sleep(QUIESCE_S)
        half[name] = rss_kb(pid)
        opened_half[name] = reached
        more, reached_more = open_all(port, args.mode, args.conns - first, deadline)
        held[name] = socks + more
        opened[name] = reached + reached_more
        time.sleep(QUIESCE_S)
        peak[name] = rss_kb(pid)
    for socks in held.values():
        for sock in socks:
            sock.close()
    closed_at = time.monotonic()
    time.sleep(AFTER_CLOSE_S)
    after3 = {name: rss_kb(pid) for name, _, pid in targets}
    rest = args.settle - (time.monotonic() - closed_at)
    if rest > 0:
        time.sleep(rest)
    settled = {name: rss_kb(pid) for name, _, pid in targets}
    anon_settled = {name: rss_kb(pid, "RssAnon") for name, _, pid in targets}
    settle_s = time.monotonic() - closed_at
    for name, _, _ in targets:
        print(
            f"ROW {name} {args.mode} {args.conns} {opened[name]} {start[name]} {peak[name]} "
            f"{after3[name]} {settled[name]} {settle_s:.0f} {anon_start[name]} {anon_settled[name]} "
            f"{opened_half[name]} {half[name]}",
            flush=True,
        )


if __name__ == "__main__":
    main()

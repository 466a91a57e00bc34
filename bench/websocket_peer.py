#!/usr/bin/env python3
"""Both ends of bench/websocket.sh: a WebSocket echo backend and a client that holds
many tunnels open through a proxy, measures echo round trips per second over all of
them, and reads the proxy's resident memory before and with the tunnels open.

  websocket_peer.py backend --port P
  websocket_peer.py client --port P --pid PID --name NAME --tunnels N --seconds S

The backend answers an HTTP/1.1 `Upgrade: websocket` request with `101` (a proper
`Sec-WebSocket-Accept`) and then echoes every byte back; a request without `Upgrade`
gets `200 ok` (readiness checks). Proxies do not parse WebSocket frames once switched,
so the client sends one small masked text frame (MESSAGE_BYTES of payload) per round
trip and waits for the same number of bytes back: one message out, one echo in.

The client prints one machine-readable line:
  ROW name tunnels opened rss_before_kb rss_open_kb messages seconds
Only 127.0.0.1 is ever connected to; every wait is bounded.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import sys
import time

# Payload bytes of one echoed message.
MESSAGE_BYTES = 32
# Longest wait for all tunnels to open (seconds).
OPEN_TIMEOUT_S = 30.0
# Pause with every tunnel open before reading the proxy's memory (seconds).
QUIESCE_S = 1.0
# Most tunnels one client run accepts.
MAX_TUNNELS = 10000
# Longest echo phase accepted (seconds).
MAX_SECONDS = 30
# Tunnels opened at once while connecting.
OPEN_CONCURRENCY = 100

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload):
    """One masked, final text frame (client to server), as RFC 6455 writes it."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


MESSAGE = frame(b"x" * MESSAGE_BYTES)


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


def rss_kb(root):
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- backend
async def serve_one(reader, writer):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
        writer.close()
        return
    key = None
    upgrade = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"sec-websocket-key":
            key = value.strip()
        elif name == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
    if not upgrade or key is None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()
        return
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                 b"sec-websocket-accept: " + accept + b"\r\n\r\n")
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def backend(port):
    server = await asyncio.start_server(serve_one, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- client
UPGRADE = (b"GET /live HTTP/1.1\r\nHost: bench.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


async def open_tunnel(port, gate):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(UPGRADE)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            return None
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            return None
        return reader, writer


async def echo_loop(reader, writer, until, counts):
    n = 0
    try:
        while time.monotonic() < until:
            writer.write(MESSAGE)
            await reader.readexactly(len(MESSAGE))
            n += 1
    except (OSError, asyncio.IncompleteReadError):
        pass
    counts.append(n)


async def client(args):
    before = rss_kb(args.pid)
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    opened = await asyncio.wait_for(
        asyncio.gather(*(open_tunnel(args.port, gate) for _ in range(args.tunnels))), OPEN_TIMEOUT_S)
    tunnels = [t for t in opened if t is not None]
    # One round trip on each, so every tunnel has carried bytes both ways.
    for reader, writer in tunnels:
        writer.write(MESSAGE)
    for reader, writer in tunnels:
        await asyncio.wait_for(reader.readexactly(len(MESSAGE)), 10)
    await asyncio.sleep(QUIESCE_S)
    with_open = rss_kb(args.pid)
    counts = []
    started = time.monotonic()
    until = started + args.seconds
    await asyncio.gather(*(echo_loop(r, w, until, counts) for r, w in tunnels))
    elapsed = time.monotonic() - started
    for _, writer in tunnels:
        writer.close()
    print(f"ROW {args.name} {args.tunnels} {len(tunnels)} {before} {with_open} {sum(counts)} {elapsed:.2f}",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    b = sub.add_parser("backend")
    b.add_argument("--port", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--pid", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--tunnels", type=int, default=1000)
    c.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if args.role == "backend":
        asyncio.run(backend(args.port))
        return
    if not 1 <= args.tunnels <= MAX_TUNNELS:
        sys.exit(f"--tunnels must be 1..{MAX_TUNNELS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        sys.exit(f"--seconds must be in (0, {MAX_SECONDS}]")
    asyncio.run(client(args))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A paced HTTP/1.1 keep-alive client for bench/low-load.sh: RATE requests per second
in all, spread over CONNS connections on a fixed schedule (not as fast as possible, as
wrk does), for SECONDS. Prints the number of answered requests. Loopback only."""
import asyncio
import sys
import time


async def connection(host, port, interval, start, deadline, counts):
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    due = start
    try:
        while True:
            now = time.monotonic()
            if due >= deadline:
                return
            if due > now:
                await asyncio.sleep(due - now)
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            counts[0] += 1
            due += interval
    finally:
        writer.close()


async def main():
    host, port, rate, seconds, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    if not (host.startswith("127.") or host == "::1"):
        sys.exit("paced.py: loopback only")
    interval = conns / rate
    start = time.monotonic() + 0.2
    deadline = start + seconds
    counts = [0]
    # Connections start evenly spread over one interval, so the load is smooth.
    await asyncio.gather(*(connection(host, port, interval, start + i * interval / conns, deadline, counts) for i in range(conns)))
    print(counts[0])


asyncio.run(main())

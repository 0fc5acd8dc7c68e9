"""How fast can a flood source send when its reader costs almost nothing?

A relay can only be as fast as its source. This reads a flood with one plain socket: the HTTP upgrade, then
`recv_into` of 4 MiB at a time, counting bytes and nothing else (no frame parsing, no UTF-8 check, no write),
until the N messages' frames have arrived. The source's rate here is the most that any relay could be measured
at in `bench/run`'s throughput cases, on this machine, with the source sharing the cores as it does there.
It also reports the source's CPU seconds per million messages: a source that writes once per message (picows,
like most asyncio servers) pays more per message the faster its reader drains the socket.

    bench/.venv/bin/python bench/diagnostics/source_ceiling.py BIN_DIR [--source sim|picows] [--count 200000]
        [--size 4096] [--repeat 3] [--pause-us 0]
"""
import argparse
import base64
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsbench.procs import cpu_seconds, now_ns  # noqa: E402
from wsbench.simulator import PicowsSource, Simulator  # noqa: E402


def frame_bytes(size):
    """An unmasked server frame: 2-byte header, plus 2 or 8 bytes of extended length."""
    return size + 2 + (0 if size < 126 else 2 if size < 65536 else 8)


def open_flood(port, path, timeout):
    """Connects and upgrades; returns the socket and how many flood bytes came with the 101."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        piece = s.recv(4096)
        if not piece:
            raise RuntimeError(f"source closed during the handshake: {head!r}")
        head += piece
    status, rest = head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[1]
    if b" 101 " not in status:
        raise RuntimeError(f"handshake refused: {status!r}")
    return s, len(rest)


def run(source, count, size, pause_us=0, timeout=120):
    path = f"/feed?count={count}&size={size}&hold=1"
    s, got = open_flood(source.port, path, timeout)
    source.wait_open(1, 30)
    expected = count * frame_bytes(size)
    buffer = bytearray(1 << 22)
    view = memoryview(buffer)
    me0, src0 = cpu_seconds(os.getpid()), cpu_seconds(source.pid)
    t0 = now_ns()
    source.release()
    deadline = time.monotonic() + timeout
    while got < expected and time.monotonic() < deadline:
        n = s.recv_into(view)
        if n == 0:
            break
        got += n
        if pause_us:
            time.sleep(pause_us / 1e6)
    t1 = now_ns()
    me1, src1 = cpu_seconds(os.getpid()), cpu_seconds(source.pid)
    s.close()
    if got < expected:
        raise RuntimeError(f"got {got} of {expected} bytes")
    seconds = (t1 - t0) / 1e9
    return count / seconds, (src1 - src0) / count * 1e6, (me1 - me0) / count * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bin_dir")
    parser.add_argument("--source", choices=("sim", "picows"), default="picows")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause-us", type=int, default=0,
                        help="sleep this long after every read, so the socket fills and the source writes in bulk")
    args = parser.parse_args()
    bench_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory(prefix="wsbench-ceiling-") as work:
        for attempt in range(args.repeat):
            if args.source == "picows":
                source = PicowsSource(sys.executable, bench_dir, work)
            else:
                source = Simulator(os.path.join(args.bin_dir, "wsrelay-sim"), work)
            try:
                rate, source_us, reader_us = run(source, args.count, args.size, args.pause_us)
            finally:
                source.stop()
            print(f"{args.source} {args.count:,} x {args.size} B into a discarding reader, pause {args.pause_us} µs (run {attempt + 1}/{args.repeat}): "
                  f"{rate:,.0f} msg/s; source CPU {source_us:.2f} µs/msg, reader {reader_us:.2f} µs/msg", flush=True)


if __name__ == "__main__":
    main()

"""A fast socket subscriber, run as its own process: `python -m wsbench.subscriber ...`.

Count mode connects K clients to a Unix socket (wsrelay's unix sink or websocat's unix-l: listener),
optionally sends `{"subscribe":[]}` and waits for the `{"ok":...}` line (so the daemon has registered it),
prints `ready`, then reads until every client has N lines and prints one JSON object: per client lines,
bytes, CLOCK_MONOTONIC time of its last line, and whether it hit EOF early. With `--until` a client is done
when one of those byte strings (the last message, or the gap record that ends with it) arrives instead, for streams that may drop messages;
`gap` records are counted apart from message lines.

Latency mode (one client) also extracts the simulator's send stamp `"t":<ns>` (raw or JSON-escaped inside
an envelope) from every line and subtracts it from the CLOCK_MONOTONIC time the chunk holding the end of
that line was read: the upstream-send-to-subscriber-receive latency, both clocks on this machine.
"""

import argparse
import json
import os
import re
import select
import socket
import sys
import time

STAMP = re.compile(rb't\\?":(\d+)')
CHUNK = 256 * 1024


def connect(path, handshake):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    leftover = b""
    if handshake:
        sock.sendall(b'{"subscribe":[]}\n')
        data = b""
        sock.settimeout(30)
        while b"\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                raise RuntimeError("socket closed before the subscribe answer")
            data += piece
        line, leftover = data.split(b"\n", 1)
        if not line.startswith(b'{"ok"'):
            raise RuntimeError(f"unexpected subscribe answer: {line[:200]!r}")
        sock.settimeout(None)
    sock.setblocking(False)
    return sock, leftover


GAP = b'"event":"gap"'


def _contains(tail, buffer, got, needles):
    """One of `needles` in this chunk or straddling the end of the previous one (`tail`)."""
    for needle in needles:
        if buffer.find(needle, 0, got) >= 0 or needle in tail + bytes(buffer[:min(got, len(needle))]):
            return True
    return False


def count_lines(sockets, leftovers, expected, timeout, until=None):
    n = len(sockets)
    lines = [leftover.count(b"\n") for leftover in leftovers]
    gaps = [leftover.count(GAP) for leftover in leftovers]
    sizes = [len(leftover) for leftover in leftovers]
    tails = [leftover[-64:] for leftover in leftovers]

    def finished(i, chunk_has_marker=False):
        return chunk_has_marker if until else lines[i] >= expected
    done_ns = [time.monotonic_ns() if finished(i, bool(until) and any(u in leftovers[i] for u in until)) else None
               for i in range(n)]
    eof = [False] * n
    index = {sock.fileno(): i for i, sock in enumerate(sockets)}
    poller = select.epoll()
    for sock in sockets:
        poller.register(sock.fileno(), select.EPOLLIN)
    buffer = bytearray(CHUNK)
    remaining = sum(1 for d in done_ns if d is None)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for fd, _ in poller.poll(1.0):
            i = index[fd]
            try:
                got = sockets[i].recv_into(buffer)
            except BlockingIOError:
                continue
            if got == 0:
                eof[i] = True
                poller.unregister(fd)
                if done_ns[i] is None:
                    remaining -= 1
                continue
            lines[i] += buffer.count(b"\n", 0, got)
            sizes[i] += got
            marker = False
            if until:
                gaps[i] += buffer.count(GAP, 0, got)
                marker = _contains(tails[i], buffer, got, until)
                tails[i] = bytes(buffer[max(0, got - 64):got])
            if done_ns[i] is None and finished(i, marker):
                done_ns[i] = time.monotonic_ns()
                remaining -= 1
    messages = [lines[i] - gaps[i] for i in range(n)]
    return {"lines": messages, "gap_records": gaps, "bytes": sizes, "done_ns": done_ns, "eof": eof}


def measure_latency(sock, leftover, expected, timeout):
    latencies = []
    carry = leftover
    deadline = time.monotonic() + timeout
    sock.setblocking(True)
    sock.settimeout(1.0)
    lines = 0
    while lines < expected and time.monotonic() < deadline:
        try:
            data = sock.recv(CHUNK)
        except socket.timeout:
            continue
        received = time.monotonic_ns()
        if not data:
            break
        data = carry + data
        end = data.rfind(b"\n")
        if end < 0:
            carry = data
            continue
        complete, carry = data[:end + 1], data[end + 1:]
        lines += complete.count(b"\n")
        latencies.extend(received - int(stamp) for stamp in STAMP.findall(complete))
    return {"lines": lines, "latencies_ns": latencies}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--lines", type=int, required=True, help="lines each client must receive")
    parser.add_argument("--handshake", action="store_true", help='send {"subscribe":[]} and wait for the ok line')
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--until", action="append", help="a client is done when this text arrives (instead of after --lines lines; repeatable)")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    connections = [connect(args.socket, args.handshake) for _ in range(args.clients)]
    print("ready", flush=True)
    if args.latency:
        result = measure_latency(connections[0][0], connections[0][1], args.lines, args.timeout)
    else:
        until = [u.encode() for u in args.until] if args.until else None
        result = count_lines([c[0] for c in connections], [c[1] for c in connections], args.lines, args.timeout, until)
    times = os.times()
    result["cpu_s"] = times.user + times.system
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())

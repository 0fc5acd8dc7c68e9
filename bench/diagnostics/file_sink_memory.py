"""What holds a file sink's memory during a 4 KiB flood with `fsync = "interval"`?

Runs one flood into a raw file sink (defaults: 64 MiB `buffer`, `on_full = "block"`, fsync every 1 s) and
samples every 50 ms the daemon's VmRSS and the sink's accounted `buffered_bytes` (control socket `status`).
Prints the peaks and the samples around the peak RSS; with `--env K=V` (repeatable) the daemon runs with that
environment (e.g. glibc's MALLOC_ARENA_MAX=1 or MALLOC_MMAP_THRESHOLD_=131072, to see what malloc keeps).

    bench/.venv/bin/python bench/diagnostics/file_sink_memory.py BIN_DIR [--count 200000] [--size 4096] [--env K=V]
"""
import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsbench import daemon as config  # noqa: E402
from wsbench.daemon import Daemon  # noqa: E402
from wsbench.procs import status_kib, wait_for  # noqa: E402
from wsbench.simulator import Simulator  # noqa: E402


def sink_buffered(control_path):
    """The file sink's accounted buffer (bytes) from the control socket's status reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(control_path)
        s.sendall(b'{"command":"status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            piece = s.recv(1 << 16)
            if not piece:
                break
            data += piece
    reply = json.loads(data)
    sinks = reply["status"]["sinks"]
    return sum(x["buffered_bytes"] for x in sinks if x["kind"] == "file")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--fsync", default="interval")
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="wsrelay-filemem.")
    sim = Simulator(os.path.join(args.bin_dir, "wsrelay-sim"), work)
    out = f"{work}/out"
    text = config.daemon_section(work) + config.upstream_section("bench", sim.url("/feed", count=args.count, size=args.size, hold=1))
    text += config.file_sink(out, "raw", extra=f'fsync = "{args.fsync}"\n')
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    saved = {k: os.environ.get(k) for k in extra_env}
    os.environ.update(extra_env)
    try:
        d = Daemon(os.path.join(args.bin_dir, "wsrelay"), work, text)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    sim.wait_open(1, 30)
    expected = args.count * (args.size + 1)
    samples = []
    t0 = time.monotonic()
    sim.release()
    deadline = t0 + 300
    while time.monotonic() < deadline:
        size = os.path.getsize(out) if os.path.exists(out) else 0
        samples.append((time.monotonic() - t0, status_kib(d.pid, "VmRSS"), sink_buffered(f"{work}/control.sock"), size))
        if size >= expected:
            break
        time.sleep(0.05)
    hwm = status_kib(d.pid, "VmHWM")
    seconds = samples[-1][0]
    d.stop()
    sim.stop()
    peak_rss = max(samples, key=lambda s: s[1])
    peak_buf = max(samples, key=lambda s: s[2])
    print(f"env {extra_env or '-'}; {args.count:,} x {args.size} B, fsync {args.fsync}: {seconds:.2f} s, "
          f"{args.count / seconds:,.0f} msg/s; VmHWM {hwm / 1024:.1f} MiB; peak sampled RSS {peak_rss[1] / 1024:.1f} MiB "
          f"at {peak_rss[0]:.2f} s (buffered then {peak_rss[2] / 2**20:.1f} MiB); peak buffered {peak_buf[2] / 2**20:.1f} MiB "
          f"at {peak_buf[0]:.2f} s (RSS then {peak_buf[1] / 1024:.1f} MiB)")
    for t, rss, buffered, size in samples[:: max(1, len(samples) // 25)]:
        print(f"  t={t:6.2f}s RSS {rss / 1024:7.1f} MiB  buffered {buffered / 2**20:6.1f} MiB  file {size / 2**20:7.1f} MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

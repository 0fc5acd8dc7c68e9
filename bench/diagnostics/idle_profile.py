"""Where an idle daemon's CPU goes: N idle upstreams (30 s pings) to as many simulators as idle.py uses, then
`perf record -g` on the daemon for a window once all are connected, and `perf report` (top entries) printed.
Also prints the daemon's CPU % over the window and VmRSS. With --massif the daemon runs under valgrind's
massif instead (heap by allocation site; BIN_DIR should be the DWARF 4 build of `bench/run --dwarf4`) and the
heap snapshot at the end of the window is summarised: what each idle connection's memory is made of.

    ulimit -n $(ulimit -Hn)
    bench/.venv/bin/python bench/diagnostics/idle_profile.py BIN_DIR [--connections 10000] [--window 30] [--no-perf]
    bench/.venv/bin/python bench/diagnostics/idle_profile.py .build-callgrind/release --connections 1000 --massif
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsbench import daemon as config  # noqa: E402
from wsbench.daemon import Daemon  # noqa: E402
from wsbench.idle import Simulators  # noqa: E402
from wsbench.procs import cpu_seconds, load_average, status_kib  # noqa: E402


class Ctx:
    def __init__(self, bin_dir):
        self.sim_binary = f"{bin_dir}/wsrelay-sim"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--no-perf", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="K=V in the daemon's environment (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--massif", action="store_true", help="heap profile under valgrind's massif instead of perf")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="wsrelay-idleprof.")
    sims = Simulators(Ctx(args.bin_dir), work, args.connections)
    daemon = None
    try:
        text = config.daemon_section(work, log_level="notice")
        text += "".join(config.upstream_section(f"idle-{i:05d}", sims.url(i), extra='ping_interval = "30s"\n')
                        for i in range(args.connections))
        wrapper = ()
        for pair in args.env:  # after the simulators started: only the daemon gets them
            key, value = pair.split("=", 1)
            os.environ[key] = value
        if args.massif:
            args.no_perf = True
            shim = f"{work}/sigsuspend_copy.so"
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim,
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind", "sigsuspend_copy.c")], check=True)
            wrapper = ("env", f"LD_PRELOAD={shim}", "valgrind", "--tool=massif", f"--massif-out-file={work}/massif.out",
                       "--depth=40", "--threshold=0.5")
        daemon = Daemon(f"{args.bin_dir}/wsrelay", work, text, ready_timeout=600, wrapper=wrapper)
        sims.wait_open(args.connections, 600 if args.massif else 120)
        time.sleep(5)
        print(f"load before {load_average()}", flush=True)
        cpu0 = cpu_seconds(daemon.pid)
        if args.no_perf:
            time.sleep(args.window)
        else:
            # System-wide, reported for the daemon's pid only: `perf record -p` gives up when one of the
            # daemon's threads cannot be opened (seen with perf 6.1: "Ignored open failure", exit 255).
            subprocess.run(["perf", "record", "-a", "-e", "cpu-clock", "-F", "999", "-g", "-o", f"{work}/perf.data",
                            "--", "sleep", str(args.window)], check=True, capture_output=True)
        cpu = cpu_seconds(daemon.pid) - cpu0
        print(f"{args.connections} idle: CPU {cpu / args.window * 100:.2f} % over {args.window} s, "
              f"VmRSS {status_kib(daemon.pid, 'VmRSS') / 1024:.1f} MiB; load after {load_average()}", flush=True)
        if not args.no_perf:
            report = subprocess.run(["perf", "report", "-i", f"{work}/perf.data", "--pid", str(daemon.pid), "--percentage", "relative", "--no-children", "--stdio",
                                     "--percent-limit", "1.5", "-g", "none", "--sort", "symbol"],
                                    capture_output=True, text=True).stdout
            print("\n".join(line for line in report.splitlines() if line and not line.startswith("#"))[:6000])
            report = subprocess.run(["perf", "report", "-i", f"{work}/perf.data", "--pid", str(daemon.pid), "--percentage", "relative", "--children", "--stdio",
                                     "--percent-limit", "5", "-g", "none", "--sort", "symbol"],
                                    capture_output=True, text=True).stdout
            print("--- inclusive ---")
            print("\n".join(line for line in report.splitlines() if line and not line.startswith("#"))[:6000])
    finally:
        if daemon:
            daemon.stop()
        sims.stop()
    if args.massif:
        # The last detailed snapshot before the stop (massif writes one every 10th snapshot and at the peak).
        out = subprocess.run(["ms_print", "--threshold=1", f"{work}/massif.out"], capture_output=True, text=True).stdout
        print(out[out.find("Number of snapshots"):][:200])
        detailed = out.split("->")
        print(f"massif output: {work}/massif.out (ms_print it for the full tree)")


if __name__ == "__main__":
    main()

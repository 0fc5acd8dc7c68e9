"""Processes and what /proc says about them: CPU seconds, memory, machine load."""

import os
import signal
import socket
import subprocess
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def log(message):
    """Progress line on stderr (stdout of sub-tools stays parseable)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now_ns():
    """CLOCK_MONOTONIC, the clock the simulator's admin endpoint and stamps use."""
    return time.monotonic_ns()


def cpu_seconds(pid):
    """user + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid, key):
    """A `VmXXX:` line of /proc/PID/status in KiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, what, interval=0.01):
    """Polls `condition` until true; raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


def stop(process, timeout=15):
    """SIGTERM, then SIGKILL if it does not exit in time; only the process we started."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)


def load_average():
    with open("/proc/loadavg") as f:
        return tuple(float(x) for x in f.read().split()[:3])


def busy_compilers():
    """How many compiler processes (other engineers' builds) are running now: they share our 2 cores.
    Zombies (finished, not yet reaped) do not count."""
    names = {"swift-frontend", "swift-build", "clang", "clang++", "cc1", "cc1plus", "ld", "ld.lld", "ld.gold", "swift-driver"}
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            state = stat[stat.rindex(")") + 2:].split()[0]
            if name in names and state != "Z":
                count += 1
        except OSError:
            pass
    return count


def machine_load():
    """Load average and concurrent compiler processes, recorded next to every figure."""
    one, five, fifteen = load_average()
    return {"load1": one, "load5": five, "load15": fifteen, "compilers": busy_compilers()}

"""What the figures were measured on: machine, versions, commit."""

import os
import platform
import subprocess
import time


def _run(args, cwd=None):
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def describe(ctx):
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ctx.repo)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ctx.repo)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "swift": _run(["swift", "--version"]).splitlines()[0] if _run(["swift", "--version"]) else "unknown",
        "websocat": _run([ctx.websocat, "--version"]),
        "python": platform.python_version(),
        "commit": commit + (" (with uncommitted changes in the tree)" if dirty else ""),
        "uptime": _run(["uptime"]),
    }

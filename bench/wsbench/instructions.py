"""Instructions per message under valgrind's callgrind: a figure that does not depend on the machine's load.

Each case runs the relay under `valgrind --tool=callgrind` twice, with a small flood of N0 messages and a
large one of N, otherwise identical (same source, same sink, same start and stop). Start-up, connecting and
shutdown cost the same in both, so

    instructions per message = (total(N) - total(N0)) / (N - N0)

The same difference taken per function gives a per-message profile without the start-up work (the top
entries, and the share of each shared object: the binary itself, libswiftCore, libc ...).

What it counts: user-space instructions of the relay process, all threads. Not counted: the kernel's work
in syscalls (the copies into the page cache and socket buffers), waiting, cache misses. Callgrind runs the
relay ~50× slower than natively, so the source is always ahead and every read finds a full socket buffer:
read bursts are as large as they get, which is the flood regime these cases measure.
"""

import collections
import os
import shutil
import subprocess

from . import throughput
from .procs import log

# (sink, relays): the cases of issue #15 item 3.
CASES = (("raw-file", ("wsrelay", "websocat")), ("envelope-file", ("wsrelay",)), ("subscriber", ("wsrelay", "websocat")))
# size: (N0, N) per scale.
COUNTS = {
    "full": {100: (20_000, 200_000), 4096: (4_000, 40_000)},
    "quick": {100: (5_000, 50_000), 4096: (1_000, 10_000)},
}
TOP = 12


def sigsuspend_shim(ctx):
    """bench/valgrind/sigsuspend_copy.c built into the scratch directory (see there why valgrind needs it)."""
    target = os.path.join(ctx.root, "sigsuspend_copy.so")
    if not os.path.exists(target):
        source = os.path.join(ctx.bench_dir, "valgrind", "sigsuspend_copy.c")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", target, source], check=True)
    return target


def callgrind_prefix(ctx, out_file):
    return ["env", f"LD_PRELOAD={sigsuspend_shim(ctx)}", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
            "--dump-instr=no", "--collect-jumps=no"]


def read_profile(path):
    """Self instruction counts per (object, function) and the file's total, from a callgrind output file."""
    names = {"ob": {}, "fn": {}, "fl": {}}
    space = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl"}
    costs = collections.Counter()
    ob = fn = None
    total = None
    skip = False
    with open(path, errors="replace") as f:
        for line in f:
            if skip:  # the line after calls= is the inclusive cost of that call, not self cost
                skip = False
                continue
            first = line[:1]
            if first.isdigit() or first in "+-*":
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    costs[(ob, fn)] += int(parts[1])
                continue
            if line.startswith("calls="):
                skip = True
                continue
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
                continue
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep or key not in space:
                continue
            table = names[space[key]]
            value = value.strip()
            if value.startswith("("):
                ident, _, name = value.partition(")")
                name = name.strip()
                if name:
                    table[ident] = name
                else:
                    name = table.get(ident, ident)
            else:
                name = value
            if key == "ob":
                ob = name
            elif key == "fn":
                fn = name
    return costs, total if total is not None else sum(costs.values())


def demangle(names):
    """Swift and C++ names made readable (`swift demangle --simplified`), in order."""
    if not names or not shutil.which("swift"):
        return list(names)
    try:
        out = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names) + "\n",
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return list(names)
    return out if len(out) == len(names) else list(names)


def shorten(name, limit=110):
    return name if len(name) <= limit else name[:limit - 1] + "…"


def per_message(small, large, n0, n):
    """Per-message self cost per function and per object: the difference of two profiles."""
    functions = collections.Counter()
    for key in set(small) | set(large):
        functions[key] = (large.get(key, 0) - small.get(key, 0)) / (n - n0)
    objects = collections.Counter()
    for (ob, _), value in functions.items():
        objects[os.path.basename(ob or "?")] += value
    return functions, objects


def run_pair(ctx, relay, sink, size, n0, n, source):
    """Runs one case at N0 and at N under callgrind; returns a result dict."""
    result = {"kind": "instructions", "relay": relay, "sink": sink, "size": size, "source": source, "n0": n0, "n": n}
    profiles = {}
    for count in (n0, n):
        out = os.path.join(ctx.root, f"callgrind.{relay}.{sink}.{size}.{source}.{count}.out")
        log(f"instructions: {relay} {sink} {count:,} x {size} B from {source} under callgrind ...")
        r = throughput.run_case(ctx, relay, sink, count, size, source, wrapper=callgrind_prefix(ctx, out))
        if not r.get("ok") or not os.path.exists(out):
            result.update(ok=False, note=f"{count} messages: {r.get('note') or 'no callgrind output'}")
            return result
        costs, total = read_profile(out)
        profiles[count] = costs
        result[f"total_{'n0' if count == n0 else 'n'}"] = total
        result[f"seconds_{'n0' if count == n0 else 'n'}"] = r["seconds"]
        result.setdefault("load", []).append(r["load_before"])
        if ctx.keep_profiles:
            os.makedirs(ctx.profile_dir, exist_ok=True)
            shutil.copy(out, ctx.profile_dir)
    functions, objects = per_message(profiles[n0], profiles[n], n0, n)
    result["ok"] = True
    result["per_message"] = (result["total_n"] - result["total_n0"]) / (n - n0)
    top = [(key, value) for key, value in functions.most_common(TOP)]
    readable = demangle([fn or "?" for (_, fn), _ in top])
    result["top"] = [{"function": shorten(name), "object": os.path.basename(ob or "?"), "per_message": round(value, 1)}
                     for ((ob, _), value), name in zip(top, readable)]
    result["objects"] = {name: round(value, 1) for name, value in objects.most_common(8)}
    log(f"  {result['per_message']:,.0f} instructions per message")
    return result


def run(ctx, scale, sources, sinks=None):
    """The cases of CASES, or with `sinks` those sinks (websocat too where it has the sink)."""
    cases = CASES if not sinks else [(sink, ("wsrelay", "websocat") if sink in throughput.WEBSOCAT_SINKS else ("wsrelay",))
                                     for sink in sinks]
    results = []
    for source in sources:
        for size, (n0, n) in COUNTS[scale].items():
            for sink, relays in cases:
                for relay in relays:
                    try:
                        results.append(run_pair(ctx, relay, sink, size, n0, n, source))
                    except Exception as error:  # a failed case is reported, the rest still runs
                        results.append({"kind": "instructions", "relay": relay, "sink": sink, "size": size,
                                        "source": source, "ok": False, "note": f"{type(error).__name__}: {error}"})
                        log(f"  failed: {results[-1]['note']}")
    return results

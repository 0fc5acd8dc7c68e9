"""Idle connections: N upstreams to the simulator that send nothing, pinged every 30 s (the default
ping_interval). Once all are up and settled, RSS and CPU of the daemon over a 60 s window, then how long
SIGTERM takes.

The hard descriptor limit here is 20,000 per process, so the server side is several simulator processes
(at most PER_SIMULATOR connections each, on their own ports); the daemon holds one descriptor per upstream."""

import math
import os
import time

from . import daemon as config
from .daemon import Daemon
from .procs import cpu_seconds, log, machine_load, now_ns, status_kib, wait_for
from .simulator import Simulator

PER_SIMULATOR = 6000


class Simulators:
    """Enough simulators for `connections` idle upstreams, with their stats added up."""

    def __init__(self, ctx, work, connections):
        self.all = []
        for i in range(max(1, math.ceil(connections / PER_SIMULATOR))):
            os.makedirs(f"{work}/sim{i}", exist_ok=True)
            self.all.append(Simulator(ctx.sim_binary, f"{work}/sim{i}"))

    def url(self, index):
        return self.all[index % len(self.all)].url("/idle")

    def stats(self):
        total = {}
        for sim in self.all:
            for key, value in sim.stats().items():
                if isinstance(value, int) and key != "now_ns":
                    total[key] = total.get(key, 0) + value
        return total

    def wait_open(self, count, timeout):
        return wait_for(lambda: self.stats()["open"] >= count, timeout, f"{count} open upstream connections", interval=0.2)

    def stop(self):
        for sim in self.all:
            sim.stop()


def run_case(ctx, connections, window, connect_timeout=120):
    work = ctx.scratch(f"idle-{connections}")
    result = {"kind": "idle", "connections": connections, "window_s": window, "load_before": machine_load()}
    sim = Simulators(ctx, work, connections)
    result["simulators"] = len(sim.all)
    wsrelay = None
    try:
        text = config.daemon_section(work, log_level="notice")
        text += "".join(config.upstream_section(f"idle-{i:05d}", sim.url(i), extra='ping_interval = "30s"\n')
                        for i in range(connections))
        started = now_ns()
        wsrelay = Daemon(ctx.wsrelay_binary, work, text, ready_timeout=300)
        result["rss_ready_kib"] = status_kib(wsrelay.pid, "VmRSS")
        try:
            sim.wait_open(connections, connect_timeout)
            result["connect_all_s"] = (now_ns() - started) / 1e9
            log(f"  {connections} upstreams connected in {result['connect_all_s']:.1f}s; settling 5s, then a {window}s window")
        except TimeoutError:
            # Measure anyway: what the daemon costs while it cannot get them all up is a finding too.
            result["note"] = f"only {sim.stats()['open']} of {connections} connected after {connect_timeout}s"
            log(f"  {result['note']}; measuring the {window}s window anyway")
        time.sleep(5)
        open_at_start = sim.stats()["open"]
        pings0 = sim.stats()["pings"]
        cpu0, rss0 = cpu_seconds(wsrelay.pid), status_kib(wsrelay.pid, "VmRSS")
        time.sleep(window)
        cpu1, rss1 = cpu_seconds(wsrelay.pid), status_kib(wsrelay.pid, "VmRSS")
        stats = sim.stats()
        result.update(ok=stats["open"] == connections and "note" not in result, open_at_start=open_at_start,
                      open_at_end=stats["open"], pings_in_window=stats["pings"] - pings0,
                      rss_start_kib=rss0, rss_end_kib=rss1, rss_per_connection_kib=rss1 / connections,
                      rss_hwm_kib=status_kib(wsrelay.pid, "VmHWM"),
                      cpu_s=cpu1 - cpu0, cpu_percent=(cpu1 - cpu0) / window * 100, load_after=machine_load())
    finally:
        if wsrelay:
            stopping = now_ns()
            result["daemon_exit"] = wsrelay.stop()
            result["stop_s"] = (now_ns() - stopping) / 1e9
        sim.stop()
    return result

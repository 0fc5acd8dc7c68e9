"""Reconnect storm: N upstreams sharing one OAuth 2.0 credential (the simulator's token endpoint; the
upstream accepts only the newest token) are all closed with 4001 at once. Measured: time from the close
until the last upgrade request of the reconnected set arrived at the simulator, token requests made,
upgrades refused with 401 (a stale token would show here)."""

import time

from . import daemon as config
from .daemon import Daemon
from .procs import cpu_seconds, log, machine_load, now_ns, status_kib
from .simulator import Simulator


def run_case(ctx, connections, timeout=60):
    work = ctx.scratch(f"storm-{connections}")
    result = {"kind": "storm", "connections": connections, "load_before": machine_load()}
    sim = Simulator(ctx.sim_binary, work, token_endpoint=True)
    wsrelay = None
    try:
        with open(f"{work}/refresh_token", "w") as f:
            f.write("bench-refresh-token\n")
        url = sim.url("/stream")
        text = config.daemon_section(work, log_level="notice")
        text += "".join(config.upstream_section(f"storm-{i:04d}", url, auth="shared") for i in range(connections))
        text += config.oauth2_section("shared", sim.token_url, f"{work}/refresh_token")
        wsrelay = Daemon(ctx.wsrelay_binary, work, text, ready_timeout=300)
        sim.wait_open(connections, 300)
        time.sleep(2)
        before = sim.stats()
        cpu0 = cpu_seconds(wsrelay.pid)
        closed_at = sim.close_all(4001, "token+expired")

        def all_back():
            stats = sim.stats()
            return stats if stats["accepted"] - before["accepted"] >= connections and stats["open"] == connections else None
        deadline = time.monotonic() + timeout
        after = None
        while time.monotonic() < deadline and not (after := all_back()):
            time.sleep(0.02)
        if after is None:
            after = sim.stats()
            result.update(ok=False, note=f"after {timeout}s: {after['accepted'] - before['accepted']} reconnected, {after['open']} open")
        else:
            last_upgrade = after["now_ns"] - after["last_upgrade_ago_ns"]
            result.update(ok=True, seconds=(last_upgrade - closed_at) / 1e9)
        time.sleep(1)
        final = sim.stats()
        result.update(reconnected=final["accepted"] - before["accepted"], refreshes=final["tokens_issued"] - before["tokens_issued"],
                      tokens_at_start=before["tokens_issued"], refused_401=final["rejected"] - before["rejected"],
                      cpu_s=cpu_seconds(wsrelay.pid) - cpu0, rss_kib=status_kib(wsrelay.pid, "VmRSS"),
                      load_after=machine_load())
    finally:
        if wsrelay:
            result["daemon_exit"] = wsrelay.stop()
        sim.stop()
    return result

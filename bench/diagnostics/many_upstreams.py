"""How long N idle upstreams take to connect, watched every 5 s (simulator `open`, client SYN-SENT and
ESTABLISHED sockets), then how long SIGTERM takes and the exit status.

    ulimit -n $(ulimit -Hn); bench/.venv/bin/python bench/diagnostics/many_upstreams.py 10000 .build-release/release
"""
import subprocess, sys, time
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsbench import daemon as c
from wsbench.daemon import Daemon
from wsbench.simulator import Simulator
n = int(sys.argv[1]); B = sys.argv[2] if len(sys.argv) > 2 else ".build-release/release"
extra = sys.argv[3] if len(sys.argv) > 3 else ""
work = f"/tmp/wsrelay-many-{n}"; subprocess.run(["rm", "-rf", work]); os.makedirs(work)
sim = Simulator(".build-release/release/wsrelay-sim", work)
t = c.daemon_section(work, "notice") + "".join(c.upstream_section(f"u{i:05d}", sim.url("/idle"), extra=extra) for i in range(n))
t0 = time.monotonic()
d = Daemon(f"{B}/wsrelay", work, t, ready_timeout=300)
print(f"ready after {time.monotonic()-t0:.1f}s", flush=True)
for k in range(24):
    st = sim.stats()
    ss = subprocess.run(["ss", "-tan", "state", "syn-sent"], capture_output=True, text=True).stdout.count("\n") - 1
    est = subprocess.run(["ss", "-tanH", "state", "established", f"( dport = :{sim.port} )"], capture_output=True, text=True).stdout.count("\n")
    print(f"t={time.monotonic()-t0:5.1f}s open={st['open']} accepted={st['accepted']} rejected={st['rejected']} syn-sent={ss} established(client side)={est}", flush=True)
    if st["open"] >= n: break
    time.sleep(5)
t1 = time.monotonic(); code = d.stop(); print(f"stop took {time.monotonic()-t1:.1f}s exit {code}"); sim.stop()

"""Does `on_full = "block"` hold a flood back? A file sink whose "disk" is a FIFO read at about 6 MB/s, with
`buffer = "8MiB"`: with working back-pressure the sink's BUFFER column (wsrelay status) stays near 100% and the
simulator's `sent` follows the reader; without it the whole flood lands in the daemon's memory.

    bench/.venv/bin/python bench/diagnostics/backpressure.py .build-release/release
"""
import os, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsbench import daemon as c
from wsbench.daemon import Daemon
from wsbench.simulator import Simulator
from wsbench.procs import status_kib
B = sys.argv[1]
work = "/tmp/wsrelay-backpressure"; subprocess.run(["rm", "-rf", work]); os.makedirs(work)
fifo = f"{work}/out"; os.mkfifo(fifo)
got = [0]
def reader():
    with open(fifo, "rb", buffering=0) as f:
        while True:
            data = f.read(65536)
            if not data: return
            got[0] += len(data); time.sleep(0.01)
threading.Thread(target=reader, daemon=True).start()
sim = Simulator(f"{B}/wsrelay-sim" if os.path.exists(f"{B}/wsrelay-sim") else ".build-release/release/wsrelay-sim", work)
text = c.daemon_section(work) + c.upstream_section("bench", sim.url("/feed", count=20000, size=4096, hold=1))
text += f'[[sink]]\ntype = "file"\npath = "{fifo}"\nformat = "raw"\nbuffer = "8MiB"\non_full = "block"\nfsync = "never"\n'
d = Daemon(f"{B}/wsrelay", work, text); sim.wait_open(1, 30); sim.release()
for i in range(8):
    time.sleep(1)
    st = subprocess.run([f"{B}/wsrelay", "status", "--config", d.config], capture_output=True, text=True).stdout
    buf = [l for l in st.splitlines() if "file:" in l]
    print(f"t={i+1}s sim sent {sim.stats()['sent']:6d} msgs, reader got {got[0]/4097:6.0f} msgs, daemon RSS {status_kib(d.pid,'VmRSS')/1024:4.0f} MiB | {' '.join(buf[0].split()[2:6]) if buf else st[:100]}", flush=True)
d.process.kill(); sim.stop()

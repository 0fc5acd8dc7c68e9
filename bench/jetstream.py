#!/usr/bin/env python3
"""JetStream sink throughput next to the raw file sink, in the same run (issue 12's "Measure").

    python3 bench/jetstream.py [--bin DIR] [--count-small N] [--count-large N]

DIR holds release builds of wsrelay and wsrelay-sim (default .build-release/release). For 100 B and 4 KiB
messages it floods one upstream (the project's simulator, hold=1 then POST /release) into (1) a raw file sink
and (2) a JetStream sink publishing to a single-node nats-server stream (file storage, R1), and reports msg/s
(release until the last message is written / acknowledged) and the relay's CPU seconds per million messages
(user+system from /proc). Everything on 127.0.0.1; every wait is bounded.
"""
import argparse, json, os, shutil, socket, subprocess, tempfile, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond(): return
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")

def status(binary, sock):
    out = subprocess.run([binary, "status", "--json", "--socket", sock], capture_output=True, text=True).stdout
    try: return json.loads(out)
    except ValueError: return None

def run_case(args, work, sim_port, admin_port, nats_url, kind, size, count):
    d = tempfile.mkdtemp(dir=work)
    sock = f"{d}/control.sock"
    out = f"{d}/out.raw"
    name = f"B{size}_{int(time.time() * 1000) % 10**8}"
    if kind == "file":
        sink = f'type = "file"\npath = "{out}"\nformat = "raw"\nfsync = "never"'
    else:
        sink = (f'type = "jetstream"\nservers = ["{nats_url}"]\nsubject = "{name.lower()}.{{upstream}}"\n'
                f'stream = {{ name = "{name}" }}')
    config = f"""[daemon]
state_dir = "{d}"
control_socket = "{sock}"

[[upstream]]
name = "feed"
url = "ws://127.0.0.1:{sim_port}/feed?count={count}&size={size}&hold=1"

[[sink]]
{sink}
"""
    open(f"{d}/c.toml", "w").write(config)
    relay = subprocess.Popen([f"{args.bin}/wsrelay", "run", "--config", f"{d}/c.toml"],
                             stdout=subprocess.DEVNULL, stderr=open(f"{d}/relay.err", "w"))
    try:
        def ready():
            s = status(f"{args.bin}/wsrelay", sock)
            if not s or not s["upstreams"] or s["upstreams"][0].get("state") not in ("open", "connected"): return False
            j = s["sinks"][0].get("jetstream")
            return kind == "file" or (j and j.get("connected_server"))
        wait(ready, 30, "relay ready")
        cpu0 = cpu_seconds(relay.pid)
        t0 = time.monotonic()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin_port}/release", method="POST"), timeout=10)
        if kind == "file":
            wait(lambda: os.path.exists(out) and os.path.getsize(out) >= count * (size + 1), 600, "file")
        else:
            wait(lambda: (status(f"{args.bin}/wsrelay", sock) or {"sinks": [{}]})["sinks"][0]
                 .get("jetstream", {}).get("acknowledged", 0) >= count, 600, "acks")
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(relay.pid) - cpu0
    finally:
        relay.terminate(); relay.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    return {"sink": kind, "size": size, "messages": count, "msg_per_s": count / elapsed,
            "cpu_s_per_million": cpu / count * 1e6}

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=".build-release/release")
    p.add_argument("--count-small", type=int, default=200_000)
    p.add_argument("--count-large", type=int, default=50_000)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="wsrelay-jsbench-")
    nats_port, mon = free_port(), free_port()
    nats = subprocess.Popen(["nats-server", "-js", "-sd", f"{work}/nats", "-a", "127.0.0.1", "-p", str(nats_port),
                             "-m", str(mon)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim_port, admin_port = free_port(), free_port()
    sim = subprocess.Popen([f"{args.bin}/wsrelay-sim", "--port", str(sim_port), "--admin-port", str(admin_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(1)
        for size, count in ((100, args.count_small), (4096, args.count_large)):
            for kind in ("file", "jetstream"):
                r = run_case(args, work, sim_port, admin_port, f"nats://127.0.0.1:{nats_port}", kind, size, count)
                results.append(r)
                print(f"{kind:9} {size:5} B  {count:7} msgs  {r['msg_per_s']:10.0f} msg/s  "
                      f"{r['cpu_s_per_million']:6.2f} CPU s / million", flush=True)
    finally:
        sim.terminate(); nats.terminate(); sim.wait(); nats.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))

if __name__ == "__main__":
    main()

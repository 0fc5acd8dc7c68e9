#!/usr/bin/env python3
"""JetStream sink throughput next to the raw file sink, in the same run (issue 12's "Measure").

    bench/.venv/bin/python bench/jetstream.py [--bin DIR] [--count-small N] [--count-large N] [--cluster]

DIR holds release builds of wsrelay and wsrelay-sim (default .build-release/release). For 100 B and 4 KiB
messages it floods one upstream (the project's simulator, hold=1 then POST /release) into (1) a raw file sink
(fsync never) and (2) a JetStream sink publishing to a stream with file storage: a single nats-server (R1), and
with --cluster also a 3-node cluster on 127.0.0.1 with an R3 stream. It reports msg/s (release until the last
message is written / acknowledged), the relay's CPU seconds per million messages (user+system from /proc), the
nats-servers' CPU seconds per million and the 1-minute load average before and after each case. Results go to
stdout (a table, then JSON) and bench/results/jetstream-*.json. Everything on 127.0.0.1; every wait is bounded.
"""
import argparse, json, os, shutil, socket, subprocess, tempfile, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def load1():
    return float(open("/proc/loadavg").read().split()[0])

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

def http_ok(url):
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False

class NatsServers:
    """One nats-server with JetStream, or three clustered (routes between them), on free loopback ports."""

    def __init__(self, work, nodes):
        os.makedirs(work, exist_ok=True)
        self.procs, self.urls = [], []
        cluster_ports = [free_port() for _ in range(nodes)] if nodes > 1 else []
        monitors = []
        for i in range(nodes):
            port, mon = free_port(), free_port()
            args = ["nats-server", "-js", "-sd", f"{work}/nats-n{i + 1}", "-a", "127.0.0.1", "-p", str(port),
                    "-m", str(mon), "-n", f"n{i + 1}"]
            if nodes > 1:
                routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i)
                args += ["--cluster_name", "wsrelay-bench", "-cluster", f"nats://127.0.0.1:{cluster_ports[i]}", "-routes", routes]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(f"{work}/nats-n{i + 1}.log", "w")))
            self.urls.append(f"nats://127.0.0.1:{port}")
            monitors.append(mon)
        for mon in monitors:
            # JetStream ready (in a cluster: a meta leader elected), not only the port open.
            wait(lambda: http_ok(f"http://127.0.0.1:{mon}/healthz?js-enabled-only=true"), 60, "nats-server health")

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)

def run_case(args, work, sim_port, admin_port, nats, kind, size, count, replicas):
    d = tempfile.mkdtemp(dir=work)
    sock = f"{d}/control.sock"
    out = f"{d}/out.raw"
    name = f"B{size}_R{replicas}_{int(time.time() * 1000) % 10**8}"
    if kind == "file":
        sink = f'type = "file"\npath = "{out}"\nformat = "raw"\nfsync = "never"'
    else:
        servers = ", ".join(f'"{u}"' for u in nats.urls)
        sink = (f'type = "jetstream"\nservers = [{servers}]\nsubject = "{name.lower()}.{{upstream}}"\n'
                f'stream = {{ name = "{name}", replicas = {replicas} }}')
    config = f"""[daemon]
state_dir = "{d}"
control_socket = "{sock}"
log_level = "notice"

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
        wait(ready, 60, "relay ready")
        time.sleep(0.5)  # the stream is created once connected
        load_before = load1()
        cpu0, nats0 = cpu_seconds(relay.pid), nats.cpu()
        t0 = time.monotonic()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin_port}/release", method="POST"), timeout=10)
        if kind == "file":
            wait(lambda: os.path.exists(out) and os.path.getsize(out) >= count * (size + 1), 600, "file")
        else:
            wait(lambda: (status(f"{args.bin}/wsrelay", sock) or {"sinks": [{}]})["sinks"][0]
                 .get("jetstream", {}).get("acknowledged", 0) >= count, 600, "acks")
        elapsed = time.monotonic() - t0
        cpu, nats_cpu = cpu_seconds(relay.pid) - cpu0, nats.cpu() - nats0
    finally:
        relay.terminate(); relay.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    return {"sink": kind, "replicas": replicas if kind != "file" else None, "nodes": len(nats.procs), "size": size,
            "messages": count, "seconds": elapsed, "msg_per_s": count / elapsed, "cpu_s_per_million": cpu / count * 1e6,
            "nats_cpu_s_per_million": nats_cpu / count * 1e6 if kind != "file" else None,
            "load1_before": load_before, "load1_after": load1(), "measured_at": time.strftime("%H:%M:%S")}

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=".build-release/release")
    p.add_argument("--count-small", type=int, default=200_000)
    p.add_argument("--count-large", type=int, default=50_000)
    p.add_argument("--cluster", action="store_true", help="also a 3-node cluster with an R3 stream")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="wsrelay-jsbench-")
    sim_port, admin_port = free_port(), free_port()
    sim = subprocess.Popen([f"{args.bin}/wsrelay-sim", "--port", str(sim_port), "--admin-port", str(admin_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        wait(lambda: http_ok(f"http://127.0.0.1:{admin_port}/stats"), 30, "simulator")
        for nodes, replicas in ((1, 1), (3, 3)) if args.cluster else ((1, 1),):
            nats = NatsServers(f"{work}/{nodes}", nodes)
            try:
                for size, count in ((100, args.count_small), (4096, args.count_large)):
                    for kind in ("file", "jetstream"):
                        r = run_case(args, work, sim_port, admin_port, nats, kind, size, count, replicas)
                        results.append(r)
                        label = "raw file" if kind == "file" else f"JetStream R{replicas} ({nodes} node{'s' if nodes > 1 else ''})"
                        nats_cpu = f"  nats {r['nats_cpu_s_per_million']:6.2f} CPU s / million" if r["nats_cpu_s_per_million"] is not None else ""
                        print(f"{label:24} {size:5} B  {count:7} msgs  {r['msg_per_s']:10.0f} msg/s  "
                              f"{r['cpu_s_per_million']:6.2f} CPU s / million{nats_cpu}  (load {r['load1_before']:.2f} / {r['load1_after']:.2f})", flush=True)
            finally:
                nats.stop()
    finally:
        sim.terminate(); sim.wait()
        shutil.rmtree(work, ignore_errors=True)
    data = {"kind": "jetstream", "date": started, "uptime_at_start": uptime_start,
            "uptime_at_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "nats_server": subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip(),
            "results": results}
    results_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, time.strftime("jetstream-%Y%m%d-%H%M%S.json")), "w") as f:
        json.dump(data, f, indent=1)
    print(json.dumps(data))

if __name__ == "__main__":
    main()

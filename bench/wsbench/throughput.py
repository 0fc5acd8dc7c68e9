"""Flood throughput: the simulator sends N messages of S bytes as fast as the relay reads them; the relay
forwards to a raw file, an envelope file, one Unix-socket subscriber or 100 of them. The clock starts at the
simulator's release (everything connected) and stops when the last message is in the file or at the last
subscriber. CPU seconds and peak RSS are the relay process's own."""

import json
import os
import subprocess
import time

from . import daemon as config
from .daemon import Daemon
from .procs import cpu_seconds, log, machine_load, now_ns, status_kib, stop, wait_for
from .simulator import flood_source

SINKS = ("raw-file", "raw-file-nofsync", "envelope-file", "subscriber", "subscriber-envelope", "subscribers-100",
         "raw-file-trades", "raw-file-trades-deflate")
# The compression pair: the same market-data-like JSON (`trades=1`) into a raw file without fsync, sent plain
# and compressed with permessage-deflate (`deflate=1`: the simulator compresses, wsrelay inflates).
TRADES_SINKS = ("raw-file-trades", "raw-file-trades-deflate")
# websocat 1.13 has no working fan-out: `unix-l:... broadcast:ws://...` panics (slab "invalid key") as soon as
# subscribers connect, with or without -U/-E, so (d) has no websocat column.
WEBSOCAT_SINKS = ("raw-file", "subscriber")


def file_has_raw_lines(path, count, size):
    """A raw file (payload + newline per message) is complete at exactly count*(size+1) bytes."""
    expected = count * (size + 1)
    return lambda: os.path.exists(path) and os.path.getsize(path) >= expected


def file_has_seq(path, count):
    """An envelope file is complete when its last complete line carries "seq":count."""
    marker = f'"seq":{count},'.encode()

    def check():
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                end = f.tell()
                f.seek(max(0, end - 65536))
                tail = f.read()
        except OSError:
            return False
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        return tail.endswith(b"\n") and marker in lines[-1]
    return check


def warm_free_pages(workdir, nbytes):
    """Writes and deletes a file of `nbytes`, so that the page cache the run is about to fill comes from memory
    the kernel has just freed rather than from memory the hypervisor has taken back.

    This machine is a VM whose balloon device has free page reporting on: memory that stays free for about two
    seconds is handed back to the host, and the guest's next touch of it costs a host fault. Writing 800 MB
    into the page cache took 0.12 s of system time on just-freed memory and 1.9 s on handed-back memory
    (`dd if=/dev/zero of=F bs=4M count=200`, right after deleting another such file vs 12 s later). Whether a
    run met one or the other depended on the seconds between runs, and it decided the run (300k vs 130k msg/s
    at 4 KiB): the relay was not measured, the hypervisor was. Both relays get the same warm-up."""
    path = f"{workdir}/warm-up"
    chunk = bytes(1 << 22)
    with open(path, "wb") as f:
        for _ in range((nbytes + len(chunk) - 1) // len(chunk)):
            f.write(chunk)
    os.unlink(path)


def count_newlines(path):
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            total += chunk.count(b"\n")
    return total


class SubscriberProcess:
    """wsbench.subscriber in its own process, so its reading does not share a GIL with the harness."""

    def __init__(self, ctx, socket_path, clients, lines, handshake, latency=False, timeout=300, until=None):
        args = [ctx.python, "-m", "wsbench.subscriber", "--socket", socket_path, "--clients", str(clients),
                "--lines", str(lines), "--timeout", str(timeout)]
        for marker in until or []:
            args += ["--until", marker]
        if handshake:
            args.append("--handshake")
        if latency:
            args.append("--latency")
        self.process = subprocess.Popen(args, cwd=ctx.bench_dir, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        first = self.process.stdout.readline().strip()
        if first != "ready":
            self.process.kill()
            raise RuntimeError(f"subscriber did not get ready (said {first!r})")

    def result(self, timeout):
        out, _ = self.process.communicate(timeout=timeout)
        return json.loads(out)


def websocat(ctx, args, workdir, stdout_path=None, wrapper=()):
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    log_file = open(f"{workdir}/websocat.log", "wb")
    return subprocess.Popen(list(wrapper) + [ctx.websocat] + args, stdin=subprocess.DEVNULL, stdout=out, stderr=log_file)


def run_case(ctx, relay, sink, count, size, source="sim", wrapper=()):
    """One measured run; returns a result dict (ok False with a note when it did not complete). `source` is
    the flood source: the project's simulator ("sim") or the independent picows server ("picows"). `wrapper`
    is a command prefix for the relay (valgrind for `--instructions`); the relay then runs ~50× slower, so
    the time limits grow with it."""
    work = ctx.scratch(f"{relay}-{sink}-{count}x{size}-{source}")
    result = {"kind": "throughput", "relay": relay, "sink": sink, "count": count, "size": size, "source": source,
              "load_before": machine_load()}
    sim = flood_source(ctx, source, work)
    relay_process = None
    subscriber = None
    wsrelay = None
    out = f"{work}/out"
    sock = f"{work}/stream.sock"
    timeout = max(120, count / 5000) * (10 if wrapper else 1)
    try:
        scenario = {"trades": 1} if sink in TRADES_SINKS else {}
        if sink == "raw-file-trades-deflate":
            scenario["deflate"] = 1
        url = sim.url("/feed", count=count, size=size, hold=1, **scenario)
        clients = 100 if sink == "subscribers-100" else 1
        if relay == "wsrelay":
            # Under valgrind the relay reads far slower than the source sends, so a pong waits behind seconds of
            # flood in the socket and the connection would be declared dead: no pings there.
            text = config.daemon_section(work) + config.upstream_section("bench", url, extra='ping_interval = "0s"\n' if wrapper else "")
            if sink == "raw-file":
                text += config.file_sink(out, "raw")
            elif sink == "raw-file-nofsync" or sink in TRADES_SINKS:
                # websocat's `> file` never syncs; this is wsrelay with the same (lack of) durability.
                text += config.file_sink(out, "raw", extra='fsync = "never"\n')
            elif sink == "envelope-file":
                text += config.file_sink(out, "envelope")
            elif sink == "subscribers-100":
                # A subscriber never slows the upstream, so 100 readers cannot all keep up with a flood: they
                # get the default 8 MiB queue with slow_consumer = "drop" (gap records), and the case reports
                # how much of the stream reached them.
                text += config.unix_sink(sock, "raw", "8MiB", slow_consumer="drop")
            else:
                fmt = "envelope" if sink == "subscriber-envelope" else "raw"
                text += config.unix_sink(sock, fmt, ctx.subscriber_queue(clients))
            wsrelay = Daemon(ctx.wsrelay_binary, work, text, wrapper=wrapper)
            pid = wsrelay.pid
            sim.wait_open(1, 120 if wrapper else 30)
            if sink.startswith("subscriber"):
                # Done at the last message, or at the gap record that says it was dropped.
                until = [f'{{"n":{count},', f'"last_seq":{count},'] if clients > 1 else None
                subscriber = SubscriberProcess(ctx, sock, clients, count, handshake=True, timeout=timeout, until=until)
        else:
            if sink == "raw-file":
                relay_process = websocat(ctx, ["-n", "-U", url], work, stdout_path=out, wrapper=wrapper)
                sim.wait_open(1, 120 if wrapper else 30)
            else:
                target = ("broadcast:" + url) if clients > 1 else url
                extra = ["--queue-len", "1024"] if clients > 1 else []
                relay_process = websocat(ctx, ["-n", "-U"] + extra + [f"unix-l:{sock}", target], work, wrapper=wrapper)
                wait_for(lambda: os.path.exists(sock), 120 if wrapper else 10, "websocat's unix-l socket")
                subscriber = SubscriberProcess(ctx, sock, clients, count, handshake=False, timeout=timeout)
                sim.wait_open(1, 120 if wrapper else 30)
            pid = relay_process.pid
        if not subscriber:
            warm_free_pages(work, count * (size + 1) + (count * 64 if sink == "envelope-file" else 0))
        time.sleep(0.3)
        cpu0, sim_cpu0 = cpu_seconds(pid), cpu_seconds(sim.pid)
        t0 = now_ns()
        sim.release()
        if subscriber:
            got = subscriber.result(timeout + 30)
            finished = [d for d in got["done_ns"] if d is not None]
            t1 = max(finished) if len(finished) == clients else now_ns()
            result["subscriber_cpu_s"] = got["cpu_s"]
            if clients > 1:
                delivered = sum(got["lines"])
                result.update(ok=len(finished) == clients, delivered_fraction=delivered / (count * clients),
                              deliveries_s=delivered / ((t1 - t0) / 1e9), gap_records=sum(got["gap_records"]),
                              min_delivered=min(got["lines"]))
            else:
                result["ok"] = len(finished) == clients and all(n == count for n in got["lines"])
            if not result["ok"]:
                result["note"] = (f"{len(finished)}/{clients} subscribers got all {count} lines "
                                  f"(min {min(got['lines'])}, {sum(got['eof'])} disconnected)")
        else:
            done = file_has_seq(out, count) if sink == "envelope-file" else file_has_raw_lines(out, count, size)
            try:
                wait_for(done, timeout, f"{count} messages in {out}", interval=0.005)
                result["ok"] = True
            except TimeoutError as error:
                result["ok"] = False
                result["note"] = str(error)
            t1 = now_ns()
        cpu1, sim_cpu1 = cpu_seconds(pid), cpu_seconds(sim.pid)
        result["rss_peak_kib"] = status_kib(pid, "VmHWM")
        seconds = (t1 - t0) / 1e9
        result.update(seconds=seconds, msg_s=count / seconds, mb_s=count * size / seconds / 1e6,
                      cpu_s=cpu1 - cpu0, sim_cpu_s=sim_cpu1 - sim_cpu0, load_after=machine_load())
        if not subscriber and result["ok"]:
            lines = count_newlines(out)
            if lines != count:
                result["ok"] = False
                result["note"] = f"file has {lines} lines, expected {count}"
    finally:
        if wsrelay:
            result["daemon_exit"] = wsrelay.stop()
        if relay_process:
            result["relay_exit"] = stop(relay_process, timeout=120 if wrapper else 15)
        if subscriber and subscriber.process.poll() is None:
            subscriber.process.kill()
        sim.stop()
        if os.path.exists(out):
            os.unlink(out)
    return result

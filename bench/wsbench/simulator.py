"""Flood sources driven through an admin port: the project's upstream simulator (`wsrelay-sim`) and, as an
independent source, a picows server (`wsbench.picows_source`). Both serve `/feed?count=N&size=S&hold=1` and
answer `GET /stats` and `POST /release` on their admin port."""

import http.client
import json
import subprocess

from .procs import free_port, log, stop, wait_for

SOURCES = ("sim", "picows")


class FloodSource:
    """A source process started with `args`; `name` is what its log and errors are called."""

    name = "flood source"

    def _start(self, args, workdir, cwd=None):
        self.log_path = f"{workdir}/{self.name}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)
        self.pid = self.process.pid
        wait_for(self._answers, 30, f"{self.name}'s admin endpoint", interval=0.05)

    def url(self, path="/feed", **scenario):
        query = "&".join(f"{key}={value}" for key, value in scenario.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def _answers(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
        try:
            self.stats()
            return True
        except OSError:
            return False

    @property
    def token_url(self):
        return f"http://127.0.0.1:{self.token_port}/token"

    def _request(self, method, path, timeout=10):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{self.name} admin {method} {path}: HTTP {response.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            connection.close()

    def stats(self):
        """open, accepted, rejected, sent, pings, tokens_issued, now_ns, last_upgrade_ago_ns."""
        return self._request("GET", "/stats")

    def release(self):
        """Starts every held flood; returns the CLOCK_MONOTONIC time of the release. The simulator may answer
        only when a flood that the relay reads as fast as it is made has been sent: a compressed 4 KiB flood
        keeps the sending connection writable and its event loop busy (the admin port can share that loop)."""
        return self._request("POST", "/release", timeout=300)["at_ns"]

    def close_all(self, code, reason="bench"):
        return self._request("POST", f"/close-all?code={code}&reason={reason}")["at_ns"]

    def wait_open(self, count, timeout, what=None):
        return wait_for(lambda: self.stats()["open"] >= count, timeout,
                        what or f"{count} open upstream connection(s) at {self.name}", interval=0.05)

    def stop(self):
        stop(self.process)
        self._log.close()


class Simulator(FloodSource):
    name = "wsrelay-sim"

    def __init__(self, binary, workdir, token_endpoint=False):
        self.port = free_port()
        self.admin_port = free_port()
        self.token_port = free_port() if token_endpoint else None
        args = [binary, "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port)]
        if token_endpoint:
            args += ["--token-endpoint-port", str(self.token_port)]
        self._start(args, workdir)


class PicowsSource(FloodSource):
    """The independent source: `python -m wsbench.picows_source` in bench's virtualenv (flood only)."""

    name = "picows-source"

    def __init__(self, python, bench_dir, workdir):
        self.port = free_port()
        self.admin_port = free_port()
        self.token_port = None
        self._start([python, "-m", "wsbench.picows_source", "--port", str(self.port), "--admin-port", str(self.admin_port)],
                    workdir, cwd=bench_dir)


def flood_source(ctx, source, workdir):
    """A fresh flood source of the kind `source` (one of SOURCES)."""
    if source == "picows":
        return PicowsSource(ctx.python, ctx.bench_dir, workdir)
    return Simulator(ctx.sim_binary, workdir)

"""The project's upstream simulator (`wsrelay-sim`) as a benchmark flood source, driven through its admin port."""

import http.client
import json
import subprocess

from .procs import free_port, log, stop, wait_for


class Simulator:
    def __init__(self, binary, workdir, token_endpoint=False):
        self.port = free_port()
        self.admin_port = free_port()
        self.token_port = free_port() if token_endpoint else None
        args = [binary, "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port)]
        if token_endpoint:
            args += ["--token-endpoint-port", str(self.token_port)]
        self.log_path = f"{workdir}/wsrelay-sim.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        wait_for(self._answers, 30, "wsrelay-sim's admin endpoint", interval=0.05)

    def url(self, path="/feed", **scenario):
        query = "&".join(f"{key}={value}" for key, value in scenario.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    @property
    def token_url(self):
        return f"http://127.0.0.1:{self.token_port}/token"

    def _request(self, method, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"simulator admin {method} {path}: HTTP {response.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            connection.close()

    def _answers(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"wsrelay-sim exited with {self.process.returncode}; see {self.log_path}")
        try:
            self.stats()
            return True
        except OSError:
            return False

    def stats(self):
        """open, accepted, rejected, sent, pings, tokens_issued, now_ns, last_upgrade_ago_ns."""
        return self._request("GET", "/stats")

    def release(self):
        """Starts every held flood; returns the CLOCK_MONOTONIC time of the release."""
        return self._request("POST", "/release")["at_ns"]

    def close_all(self, code, reason="bench"):
        return self._request("POST", f"/close-all?code={code}&reason={reason}")["at_ns"]

    def wait_open(self, count, timeout, what=None):
        return wait_for(lambda: self.stats()["open"] >= count, timeout,
                        what or f"{count} open upstream connection(s) at the simulator", interval=0.05)

    def stop(self):
        stop(self.process)
        self._log.close()

"""wsrelay under test: its config, its start (readiness through NOTIFY_SOCKET, READY=1) and its stop."""

import os
import socket
import subprocess
import threading

from .procs import log, stop, wait_for


def toml_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def daemon_section(workdir, log_level="info"):
    return (f"[daemon]\nstate_dir = {toml_string(workdir)}\ncontrol_socket = {toml_string(workdir + '/control.sock')}\n"
            f"log_target = \"stderr\"\nlog_level = \"{log_level}\"\n\n")


def upstream_section(name, url, auth=None, extra=""):
    text = f"[[upstream]]\nname = {toml_string(name)}\nurl = {toml_string(url)}\n"
    if auth:
        text += f"auth = {toml_string(auth)}\n"
    return text + extra + "\n"


def file_sink(path, fmt, extra=""):
    return f"[[sink]]\ntype = \"file\"\npath = {toml_string(path)}\nformat = \"{fmt}\"\n{extra}\n"


def unix_sink(path, fmt, queue, slow_consumer="disconnect"):
    return (f"[[sink]]\ntype = \"unix\"\npath = {toml_string(path)}\nformat = \"{fmt}\"\nqueue = \"{queue}\"\n"
            f"slow_consumer = \"{slow_consumer}\"\n\n")


def oauth2_section(name, token_url, refresh_token_file):
    return (f"[auth.{name}]\ntype = \"oauth2\"\ntoken_url = {toml_string(token_url)}\nclient_id = \"wsrelay-bench\"\n"
            f"refresh_token_file = {toml_string(refresh_token_file)}\n\n")


class Daemon:
    """`wsrelay run --config FILE`, ready when it sends READY=1 on the notify socket we give it."""

    def __init__(self, binary, workdir, config_text, ready_timeout=120, wrapper=()):
        """`wrapper` is a command prefix for `run` (e.g. valgrind's), not for `check-config`."""
        self.config = f"{workdir}/wsrelay.toml"
        with open(self.config, "w") as f:
            f.write(config_text)
        check = subprocess.run([binary, "check-config", "--config", self.config], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"check-config refused the benchmark config:\n{check.stdout}{check.stderr}")
        notify_path = f"{workdir}/notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(notify_path)
        self._ready = threading.Event()
        self._closed = False
        threading.Thread(target=self._drain_notify, daemon=True).start()
        self.log_path = f"{workdir}/wsrelay.log"
        self._log = open(self.log_path, "w")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        self.stop_timeout = 120 if wrapper else 30
        self.process = subprocess.Popen(list(wrapper) + [binary, "run", "--config", self.config], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._log, env=env)
        self.pid = self.process.pid
        wait_for(self._is_ready, ready_timeout, "wsrelay's READY=1", interval=0.02)

    def _drain_notify(self):
        # Read every datagram (READY=1, STATUS=...) so the daemon's sd_notify never meets a full socket.
        while not self._closed:
            try:
                data = self._notify.recv(4096)
            except OSError:
                return
            if b"READY=1" in data.split(b"\n"):
                self._ready.set()

    def _is_ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"wsrelay exited with {self.process.returncode}; see {self.log_path}")
        return self._ready.is_set()

    def stop(self):
        code = stop(self.process, timeout=self.stop_timeout)
        self._closed = True
        self._notify.close()
        self._log.close()
        return code

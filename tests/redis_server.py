"""A private redis-server for tests that pause, stop or flush it (never the shared one).

Started on a free port with an append-only file that is synced on every write, so that a
restart brings back what it held, as a production Redis with persistence would.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.security.server import free_port

REDIS_SERVER = shutil.which("redis-server")
MISSING = "redis-server is not installed: these tests need it (Debian package `redis-server`)"


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> "PrivateRedis":
        if REDIS_SERVER is None:
            raise RuntimeError(MISSING)
        self.directory.mkdir(parents=True, exist_ok=True)
        options = {
            "port": self.port,
            "bind": "127.0.0.1",
            "dir": self.directory,
            "save": "",
            "appendonly": "yes",
            "appendfsync": "always",
            "loglevel": "warning",
        }
        command = [REDIS_SERVER]
        for name, value in options.items():
            command += [f"--{name}", str(value)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_it_answers()
        return self

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.01)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, and nothing answers."""
        os.kill(self.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while _state(self.process.pid) != "T":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not stop")
            time.sleep(0.001)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        self._wait_until_it_answers()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGCONT)  # a stopped process cannot exit
        self.process.terminate()
        self.process.wait(timeout=10)

    def flush(self) -> None:
        self.client().flushall()


def _state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]

"""The production server (gunicorn, config/gunicorn.py) as its own process, on the test database.

For what only a real deployment shows: settings read from the environment at start-up
(HTTPS_ONLY, secrets from *_FILE), gunicorn's own request limits, and what the server logs.
"""

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_env(**extra: str) -> dict[str, str]:
    """The environment of a process that uses this test run's database and cache namespace."""
    db = connection.settings_dict
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_FILE") and key not in ("SECRET_KEY", "DEBUG")
    }
    return {
        **env,
        "ENV_FILE": "/nonexistent/.env",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "LOG_LEVEL": "INFO",
        **extra,
    }


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def logs(self) -> str:
        """Everything the server wrote (stdout and stderr), once it has stopped."""
        return "".join(self.output)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[Server]:
    """Start gunicorn with `env`; yield once it listens; stop it (by its pid) afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--config",
            "config/gunicorn.py",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env={**env, "GUNICORN_ACCESS_LOG": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    reader = None
    try:
        # gunicorn says when its worker is up; read until then (or until it dies).
        for line in process.stdout:
            server.output.append(line)
            if "Booting worker" in line:
                break
        else:
            raise AssertionError("gunicorn did not start:\n" + server.logs())
        # Keep reading, so a chatty server never blocks on a full pipe.
        reader = threading.Thread(target=server.output.extend, args=(process.stdout,))
        reader.start()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=30)

#!/usr/bin/env python3
"""The API during a first load: does it keep answering while the whole census comes in?

    make bench-firstload                       # or: .venv/bin/python benchmarks/bench_firstload.py
    .venv/bin/python benchmarks/bench_firstload.py --rows 50000     # a shorter smoke run

What it does:
1. Creates its own database (nyc_trees_bench_firstload, dropped and re-created), migrated and
   empty, so that the sync it starts is a first load.
2. Starts the fake SODA server as a process (`python -m tests.fakes.soda --rows N`) and
   gunicorn as in production (bench_api's Server: 2 sync workers, DEBUG off).
3. Warms the fake server up (a `sync_trees --dry-run`: every page encoded once, cached),
   then drives --clients concurrent clients (threads, one keep-alive session each) for a few
   seconds before the load (the baseline), then starts `sync_trees` and keeps them going
   until it exits. Each request picks from a mix: trees/ with filters (cached and
   uncached), a tree's detail (404 until the load is swapped in), stats/ (cached and
   uncached), and /readyz.
4. Prints, for the baseline and for the load, requests, errors (5xx, timeouts, refused
   connections), status counts and p50/p95/p99/max latency, then the issue's target:
   during the load, 0 errors and p99 <= 1 s.

Every process shares this machine's cores (the fake server, the sync, Postgres, gunicorn,
the clients): compare the two phases of one run.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import BOROUGHS, PYTHON, Server, django_env  # noqa: E402

DATASET = "uvpi-gqnh"
SERVER_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUEST_TIMEOUT = 60  # seconds; longer than gunicorn's worker timeout (30 s)
TARGET_P99 = 1.0


@dataclass
class Sample:
    started: float
    seconds: float
    outcome: str  # an HTTP status, or the name of the error
    kind: str


@dataclass
class Clients:
    """Threads sending the mix until stopped; every answer is recorded with its phase."""

    base: str
    tree_id: int
    count: int
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, rng: random.Random) -> tuple[str, str]:
        borough = rng.choice(BOROUGHS).replace(" ", "+")
        health = rng.choice(["Good", "Fair", "Poor"])
        limit = rng.randrange(1000, 32768)  # no tree is this wide: a distinct, uncached URL
        choices = [
            ("list_cached", f"/api/v1/trees/?borough={borough}&health={health}"),
            ("list_uncached", f"/api/v1/trees/?borough={borough}&dbh_max={limit}"),
            ("detail", f"/api/v1/trees/{self.tree_id}/"),
            ("stats_cached", "/api/v1/stats/"),
            ("stats_uncached", f"/api/v1/stats/?borough={borough}&dbh_max={limit}"),
            ("readyz", "/readyz"),
        ]
        return rng.choice(choices)

    def work(self, number: int) -> None:
        rng = random.Random(number)
        session = requests.Session()
        while not self.stop.is_set():
            kind, path = self.paths(rng)
            started = time.monotonic()
            try:
                response = session.get(self.base + path, timeout=REQUEST_TIMEOUT)
                outcome = str(response.status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                session = requests.Session()
            with self.lock:
                self.samples.append(Sample(started, time.monotonic() - started, outcome, kind))

    def __enter__(self) -> "Clients":
        self.threads = [
            threading.Thread(target=self.work, args=(n,), daemon=True) for n in range(self.count)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(REQUEST_TIMEOUT + 5)


def is_error(outcome: str) -> bool:
    return not outcome.isdigit() or int(outcome) >= 500


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def summary(label: str, samples: list[Sample], seconds: float) -> tuple[int, float]:
    latencies = [s.seconds for s in samples]
    errors = sum(is_error(s.outcome) for s in samples)
    statuses = Counter(s.outcome for s in samples)
    p99 = percentile(latencies, 0.99)
    print(
        f"{label:<22} {len(samples):>7} {len(samples) / max(seconds, 1e-9):>7.1f} {errors:>6} "
        f"{percentile(latencies, 0.5) * 1000:>8.0f} {percentile(latencies, 0.95) * 1000:>8.0f} "
        f"{p99 * 1000:>8.0f} {max(latencies, default=0) * 1000:>8.0f}  "
        + ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    )
    return errors, p99


def quiet(server: Server) -> Server:
    """Django logs errors only (not every 404 before the load); gunicorn still logs its own."""
    server.env["LOG_LEVEL"] = "ERROR"
    return server


def recreate_database(name: str) -> str:
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return SERVER_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{name}"


def start_fake_soda(rows: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [str(PYTHON), "-m", "tests.fakes.soda", "--rows", str(rows)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise RuntimeError("the fake SODA server did not start")
    return process, url


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=683_788)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--baseline", type=float, default=10, help="seconds before the load")
    parser.add_argument("--port", type=int, default=8732)
    parser.add_argument("--database", default="nyc_trees_bench_firstload")
    options = parser.parse_args()
    if "bench" not in options.database:
        sys.exit(f"Refusing to use {options.database!r}: its name must contain 'bench'")
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda received, _: sys.exit(128 + received))

    database_url = recreate_database(options.database)
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=django_env(database_url),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    soda, soda_url = start_fake_soda(options.rows)
    try:
        first = requests.get(
            f"{soda_url}/resource/{DATASET}.json", params={"$limit": 1}, timeout=30
        ).json()
        tree_id = int(first[0]["tree_id"])
        with (
            tempfile.TemporaryDirectory() as static_root,
            quiet(Server(database_url, options.port, Path(static_root))) as server,
        ):
            sync_command = [str(PYTHON), "manage.py", "sync_trees"]
            sync_env = django_env(database_url, SOCRATA_URL=soda_url, SOCRATA_DATASET=DATASET)
            clients = Clients(server.base, tree_id, options.clients)
            # Untimed: the fake server encodes each page once and caches it, so that during
            # the load it costs socket writes only, as in bench_sync.
            print(f"warming up the fake server with a dry run of {options.rows:,} rows ...")
            subprocess.run([*sync_command, "--dry-run"], cwd=ROOT, env=sync_env, check=True)
            print(f"{options.clients} clients for {options.baseline:.0f} s before the load ...")
            with clients:
                time.sleep(options.baseline)
                print(f"first load of {options.rows:,} rows (sync_trees) ...", flush=True)
                load_started = time.monotonic()
                sync = subprocess.run(
                    sync_command, cwd=ROOT, env=sync_env, capture_output=True, text=True
                )
                load_ended = time.monotonic()
    finally:
        stop(soda)
    if sync.returncode != 0:
        print(sync.stdout, sync.stderr, sep="\n")
        return 1
    print(sync.stdout.strip())

    before = [s for s in clients.samples if s.started < load_started]
    during = [s for s in clients.samples if load_started <= s.started < load_ended]
    load_seconds = load_ended - load_started
    print(
        f"\n{options.clients} clients, gunicorn with 2 sync workers; "
        f"the load took {load_seconds:.1f} s"
    )
    print(
        f"{'phase':<22} {'requests':>7} {'req/s':>7} {'errors':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses"
    )
    summary("before the load", before, options.baseline)
    errors, p99 = summary("during the first load", during, load_seconds)
    for kind in sorted({s.kind for s in during}):
        summary(f"  {kind}", [s for s in during if s.kind == kind], load_seconds)
    met = errors == 0 and p99 <= TARGET_P99
    print(
        f"\ntarget during the load: 0 errors, p99 <= {TARGET_P99:.0f} s: "
        f"{'met' if met else 'NOT met'} ({errors} errors, p99 {p99:.2f} s)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

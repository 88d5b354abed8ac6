#!/usr/bin/env python3
"""Export benchmark: the whole census through gunicorn against a plain COPY, in one run.

    make bench-export                       # or: .venv/bin/python benchmarks/bench_export.py
    .venv/bin/python benchmarks/bench_export.py --rounds 1      # one round of each

What it does:
1. Fills its own database (nyc_trees_bench_export; never the development or test one) with
   683,788 generated census-like trees as benchmarks/bench_api.py does (prepare_database,
   benchmarks/census_rows.sql), reusing them on a later run.
2. Starts gunicorn as in production (bench_api's Server: DEBUG off, its own cache prefix,
   throttles out of the way) with one worker, so that worker's memory is the export's.
3. In each of --rounds rounds, in turn: `psql -c "COPY (SELECT the export's columns) TO
   STDOUT"` (the same SELECT the CSV export runs, trees.export.csv_sql), then
   export.csv, export.csv gzipped, export.geojson and export.ndjson of the whole census,
   each read to its end by one client, timed from the request to the last byte. Meanwhile
   a thread samples the worker's resident memory (VmRSS) every 50 ms: the growth is its
   peak over what it held before the round's first export.
4. Prints each figure (the median of the rounds) with the targets of issue 11: CSV at most
   1.5x the COPY, GeoJSON at most 3x, RSS growth at most 100 MB; writes the table as JSON
   under benchmarks/results/.

psql, the server and the client share this machine's cores: compare ratios within a run.
"""

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import RESULTS, ROWS, Server, prepare_database  # noqa: E402

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nyc_trees_bench_export"
READ_BYTES = 1024 * 1024
EXPORTS = {
    "csv": ("/api/v1/trees/export.csv", "identity"),
    "csv_gzip": ("/api/v1/trees/export.csv", "gzip"),
    "geojson": ("/api/v1/trees/export.geojson", "identity"),
    "ndjson": ("/api/v1/trees/export.ndjson", "identity"),
}
# Each export's target, as a multiple of the COPY's time (None: measured, no target).
TARGETS = {"csv": 1.5, "csv_gzip": None, "geojson": 3.0, "ndjson": None}
MAX_RSS_GROWTH_MB = 100


def copy_statement(database_url: str) -> str:
    """The COPY the CSV export runs for the whole census, as psql can send it."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        ENV_FILE="/dev/null",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    import django

    django.setup()
    from trees import export
    from trees.models import Tree

    sql, params = export.csv_sql(Tree.objects.all(), export.EXPORT_COLUMNS)
    assert not params, params  # no filter: nothing to bind
    return sql


def timed_copy(database_url: str, sql: str) -> tuple[float, int]:
    """Seconds and bytes of psql running the COPY, its output read here as a client's."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", database_url, "-c", sql],
        stdout=subprocess.PIPE,
    )
    size = 0
    while chunk := process.stdout.read(READ_BYTES):
        size += len(chunk)
    if process.wait() != 0:
        raise RuntimeError(f"psql exited with {process.returncode}")
    return time.monotonic() - started, size


def timed_export(base: str, path: str, encoding: str) -> tuple[float, int]:
    """Seconds and bytes (as sent) of one whole export read to its end."""
    started = time.monotonic()
    with requests.get(
        base + path, headers={"Accept-Encoding": encoding}, stream=True, timeout=600
    ) as response:
        response.raise_for_status()
        size = 0
        while chunk := response.raw.read(READ_BYTES, decode_content=False):
            size += len(chunk)
    return time.monotonic() - started, size


def workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakMemory:
    """The largest VmRSS of a process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_bytes(pid)
        self.peak = self.before
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stopped.wait(0.05):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> "PeakMemory":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join()


@dataclass
class Row:
    name: str
    seconds: float
    megabytes: float
    ratio_to_copy: float | None
    target_ratio: float | None
    met: bool | None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--reload", action="store_true", help="regenerate the rows")
    parser.add_argument("--port", type=int, default=8732)
    parser.add_argument("--database-url", default=DATABASE_URL)
    options = parser.parse_args()
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda received, _: sys.exit(128 + received))

    prepare_database(options.database_url, reload=options.reload)
    sql = copy_statement(options.database_url)
    times: dict[str, list[float]] = {name: [] for name in ("copy", *EXPORTS)}
    sizes: dict[str, int] = {}
    growth = []
    with tempfile.TemporaryDirectory() as static_root:
        server = Server(options.database_url, options.port, Path(static_root))
        server.env.update(GUNICORN_WORKERS="1", API_EXPORT_THROTTLE_RATE="1000000/second")
        with server:
            (worker,) = workers(server.process.pid)
            timed_export(server.base, "/api/v1/trees/export.csv?zipcode=10001", "identity")
            for round_number in range(1, options.rounds + 1):
                print(f"Round {round_number} of {options.rounds} ...", flush=True)
                seconds, sizes["copy"] = timed_copy(options.database_url, sql)
                times["copy"].append(seconds)
                with PeakMemory(worker) as memory:
                    for name, (path, encoding) in EXPORTS.items():
                        seconds, sizes[name] = timed_export(server.base, path, encoding)
                        times[name].append(seconds)
                growth.append(memory.peak - memory.before)
    copy_time = statistics.median(times["copy"])
    rows = [Row("copy", copy_time, sizes["copy"] / 1e6, 1.0, None, None)]
    for name in EXPORTS:
        seconds = statistics.median(times[name])
        ratio = seconds / copy_time
        target = TARGETS[name]
        met = None if target is None else ratio <= target
        rows.append(Row(name, seconds, sizes[name] / 1e6, ratio, target, met))
    growth_mb = max(growth) / 1e6
    print(f"\n{ROWS:,} trees, median of {options.rounds} round(s):")
    print(f"{'measure':<10} {'seconds':>8} {'MB sent':>8} {'x COPY':>7} {'target':>7}  met")
    for row in rows:
        target = f"<= {row.target_ratio}" if row.target_ratio else ""
        met = {True: "yes", False: "NO", None: ""}[row.met]
        print(
            f"{row.name:<10} {row.seconds:>8.2f} {row.megabytes:>8.1f} "
            f"{row.ratio_to_copy:>7.2f} {target:>7}  {met}"
        )
    memory_met = growth_mb <= MAX_RSS_GROWTH_MB
    print(
        f"worker RSS growth over the exports: {growth_mb:.1f} MB (target <= "
        f"{MAX_RSS_GROWTH_MB} MB: {'yes' if memory_met else 'NO'})"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = RESULTS / f"bench_export-{stamp}.json"
    report.write_text(
        json.dumps(
            {
                "rows": ROWS,
                "rounds": options.rounds,
                "measures": [asdict(row) for row in rows],
                "times": times,
                "rss_growth_mb": growth_mb,
            },
            indent=1,
        )
    )
    print(f"\nSaved {report.relative_to(ROOT)}")
    return 0 if memory_met and all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

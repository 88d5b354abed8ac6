"""How fast `sync_trees` brings the census in, against the floor of a plain COPY.

    .venv/bin/python -m benchmarks.bench_sync [--rows 683788] [--compare-rows 68000]
                                              [--page-size 10000] [--naive-rows 10000]

(or `make bench-sync`). It serves N generated census rows from the fake SODA server (in
this process, pages encoded once and cached by an untimed warm-up pass), uses its own
database (nyc_trees_bench_sync, dropped and re-created), and measures in one run:

  (a) the floor: a plain COPY of the same rows, as the CSV the server sends, into an
      equivalent empty table: typed columns, the primary key on tree_id and the tree
      table's secondary indexes (on the CSV's columns), maintained by the COPY; and, for a
      stricter reference, (a0) the same COPY into a bare table with only the primary key;
  (b) `sync_trees --full` into the empty database, end to end (a separate process);
  (c) a second `--full` with nothing changed (it must write 0 rows);
      and the default run with nothing changed upstream (the cheap check);
  (d) the default (incremental) run after 1% of the rows changed;
  (e) a naive peer, per-row `update_or_create`, on --naive-rows rows, extrapolated;
  and the bare download of every page (the sync cannot beat it), and the sync's peak RSS
  at N rows and at --compare-rows rows (memory must not grow with the data).

Times for (b)-(d) are of the whole command, Python start-up included; the sync's own time
(its SyncRun's start to finish) is shown beside them.
"""

import argparse
import csv
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.soda import FakeSodaServer  # noqa: E402 (needs the repository on sys.path)

DATASET = "uvpi-gqnh"
SERVER_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# SODA column -> Postgres type for the floor table (everything else is text).
FLOOR_TYPES = {
    "tree_id": "bigint PRIMARY KEY",
    "block_id": "integer",
    "created_at": "date",
    "tree_dbh": "smallint",
    "stump_diam": "smallint",
    "cb_num": "smallint",
    "borocode": "smallint",
    "cncldist": "smallint",
    "st_assem": "smallint",
    "st_senate": "smallint",
    "boro_ct": "integer",
    "latitude": "double precision",
    "longitude": "double precision",
    "x_sp": "double precision",
    "y_sp": "double precision",
    "council_district": "smallint",
    "bin": "integer",
    "bbl": "bigint",
    ":created_at": "timestamptz",
    ":updated_at": "timestamptz",
}
YES_NO_FLAGS = (
    "root_stone root_grate root_other trunk_wire trnk_light trnk_other "
    "brch_light brch_shoe brch_other"
)
FLOOR_TYPES.update(dict.fromkeys(YES_NO_FLAGS.split(), "boolean"))


@dataclass
class Measure:
    name: str
    seconds: float
    sync_seconds: float | None = None
    rss_mb: float | None = None
    target: str = ""
    note: str = ""


def database_url(name: str) -> str:
    base = SERVER_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def recreate_database(name: str) -> None:
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage_env(database: str, soda_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENV_FILE": "/nonexistent",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url(database).replace("postgresql://", "postgres://"),
        "SOCRATA_URL": soda_url,
        "SOCRATA_DATASET": DATASET,
        "CACHE_KEY_PREFIX": "bench-sync",
        "LOG_LEVEL": "WARNING",
    }


def peak_rss_mb(pid: int) -> float | None:
    """The process's own peak RSS so far (VmHWM), or None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_command(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run manage.py; returns (wall seconds, peak RSS in MB, stdout).

    The peak is read from /proc while the child runs: getrusage would report the forked
    benchmark's own size (this process holds the fake server's page cache), because a
    child's maximum RSS counts the parent's pages it shared until exec.
    """
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdout=stdout, stderr=stderr
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(), stderr.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({process.returncode}):\n{err}")
    return seconds, peak, out


def last_run(database: str) -> dict:
    with psycopg.connect(database_url(database)) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM finished_at - started_at), rows_fetched, rows_inserted, "
            "rows_updated, rows_unchanged, rows_deleted, rows_rejected "
            "FROM trees_syncrun ORDER BY id DESC LIMIT 1"
        ).fetchone()
    keys = ("seconds", "fetched", "inserted", "updated", "unchanged", "deleted", "rejected")
    return dict(zip(keys, row, strict=True))


def download_pages(url: str, page_size: int, into: Path | None = None) -> float:
    """Fetch every CSV page as the sync asks for it (keyset on :id); optionally keep the rows
    as one CSV."""
    started = time.perf_counter()
    last_id = None
    out = into.open("wb") if into else None
    with requests.Session() as session:
        while True:
            params = {"$select": ":*,*", "$order": ":id", "$limit": page_size}
            if last_id is not None:
                params["$where"] = f":id > '{last_id}'"
            response = session.get(f"{url}/resource/{DATASET}.csv", params=params, timeout=600)
            response.raise_for_status()
            body = response.content
            if out is not None:
                out.write(body if last_id is None else body.split(b"\n", 1)[1])
            records = list(csv.reader(body.decode().splitlines()))[1:]
            if records:
                last_id = records[-1][0]  # :id comes first under $select=:*,*
            if len(records) < page_size:
                break
    if out is not None:
        out.close()
    return time.perf_counter() - started


# Our column names where the CSV (the API) names them differently, for the floor's indexes.
FLOOR_COLUMNS = {
    "borough": "boroname",
    "species_id": "spc_latin",
    "surveyed_on": "created_at",
    "community_board": "cb_num",
}


def equivalent_indexes(conn: psycopg.Connection) -> list[str]:
    """The tree table's secondary indexes, rewritten for the floor table's CSV columns."""
    definitions = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename = 'trees_tree' AND indexname <> 'trees_tree_pkey'"
    ).fetchall()
    statements = []
    for name, definition in definitions:
        _, columns = definition.split(" USING ", 1)
        for ours, theirs in FLOOR_COLUMNS.items():
            columns = re.sub(rf"\b{ours}\b", theirs, columns)
        statements.append(f"CREATE INDEX floor_{name} ON bench_floor USING {columns}")
    return statements


def copy_floor(database: str, csv_path: Path, *, with_indexes: bool) -> float:
    """COPY the rows into an empty typed table: bare (primary key only), or with indexes
    equivalent to the tree table's, maintained by the COPY as it goes."""
    with csv_path.open() as file:
        header = next(csv.reader([file.readline()]))
    columns = ", ".join(f'"{name}" {FLOOR_TYPES.get(name, "text")}' for name in header)
    with psycopg.connect(database_url(database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.execute(f"CREATE TABLE bench_floor ({columns})")
        if with_indexes:
            for statement in equivalent_indexes(conn):
                conn.execute(statement)
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY bench_floor FROM STDIN (FORMAT csv, HEADER true)") as copy,
            csv_path.open("rb") as file,
        ):
            while chunk := file.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_floor")
    return seconds


def naive_peer(database: str, url: str, rows: int) -> float:
    """Per-row update_or_create, as a straightforward Django sync would do it."""
    env = manage_env(database, url)
    code = f"""
import time, requests
from trees.models import Species, Tree
from trees.loader import COLUMNS
rows = requests.get("{url}/resource/{DATASET}.json",
    params={{"$select": ":*,*", "$order": ":id", "$limit": {rows}}}, timeout=600).json()
Tree.objects.all().delete()
def typed(row):
    values = {{}}
    for column in COLUMNS:
        raw = next((row[s] for s in column.sources if s in row), None)
        if column.field.startswith("spc_"):
            continue
        kind = column.kind.value
        if raw is None:
            values[column.field] = "" if kind in ("text", "choice") else None
        elif kind in ("bigint", "integer", "smallint"):
            values[column.field] = int(raw)
        elif kind == "float":
            values[column.field] = float(raw)
        elif kind == "boolean":
            values[column.field] = raw.lower() in ("yes", "y", "true")
        elif kind == "date":
            values[column.field] = raw[:10]
        else:
            values[column.field] = raw
    return values
started = time.perf_counter()
for row in rows:
    values = typed(row)
    species = None
    if row.get("spc_latin"):
        species, _ = Species.objects.get_or_create(
            latin_name=row["spc_latin"], defaults={{"common_name": row.get("spc_common", "")}})
    tree_id = values.pop("tree_id")
    Tree.objects.update_or_create(tree_id=tree_id, defaults={{**values, "species": species}})
print(time.perf_counter() - started)
"""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=683_788)
    parser.add_argument("--compare-rows", type=int, default=68_000)
    parser.add_argument("--page-size", type=int, default=10_000, help="as sync_trees' default")
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--database", default="nyc_trees_bench_sync")
    args = parser.parse_args()
    paging = ["--page-size", str(args.page_size)]

    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    measures: list[Measure] = []
    recreate_database(args.database)
    with FakeSodaServer(rows=args.rows) as server, tempfile.TemporaryDirectory() as tmp:
        env = manage_env(args.database, server.url)
        run_command(["migrate", "--noinput", "-v", "0"], env)

        print(f"warming up the fake server with {args.rows} rows ...", flush=True)
        floor_csv = Path(tmp) / "rows.csv"
        download_pages(server.url, args.page_size, into=floor_csv)  # untimed: fills the cache
        download = download_pages(server.url, args.page_size)
        floor = copy_floor(args.database, floor_csv, with_indexes=True)
        bare_floor = copy_floor(args.database, floor_csv, with_indexes=False)
        measures.append(Measure("(a) COPY floor, equivalent table (same indexes)", floor))
        measures.append(
            Measure("(a0) COPY into a bare typed table (primary key only)", bare_floor)
        )
        measures.append(Measure("bare download of every page (CSV)", download))

        print("(b) full sync into an empty database ...", flush=True)
        seconds, rss, _ = run_command(["sync_trees", "--full", *paging], env)
        run = last_run(args.database)
        assert run["inserted"] == args.rows, run
        measures.append(
            Measure("(b) sync_trees --full, empty db", seconds, run["seconds"], rss, "<= 2.5x")
        )
        full_rss = rss

        print("(c) second full sync, nothing changed ...", flush=True)
        seconds, rss, _ = run_command(["sync_trees", "--full", *paging], env)
        run = last_run(args.database)
        written = run["inserted"] + run["updated"] + run["deleted"]
        measures.append(
            Measure(
                "(c) sync_trees --full, nothing changed",
                seconds,
                run["seconds"],
                rss,
                "<= 3x, 0 written",
                f"{written} rows written",
            )
        )

        seconds, rss, _ = run_command(["sync_trees", *paging], env)
        run = last_run(args.database)
        measures.append(
            Measure(
                "default run, nothing changed upstream",
                seconds,
                run["seconds"],
                rss,
                "<= 1 s",
                f"fetched {run['fetched']}",
            )
        )

        changed = args.rows // 100
        server.update_rows(changed, health="Poor")
        print(f"(d) incremental sync after {changed} rows changed ...", flush=True)
        seconds, rss, _ = run_command(["sync_trees", *paging], env)
        run = last_run(args.database)
        measures.append(
            Measure(
                "(d) sync_trees (incremental), 1% changed",
                seconds,
                run["seconds"],
                rss,
                "<= 5% of (b)",
                f"fetched {run['fetched']}, updated {run['updated']}",
            )
        )

        print(f"(e) naive per-row update_or_create on {args.naive_rows} rows ...", flush=True)
        naive = naive_peer(args.database, server.url, args.naive_rows)
        measures.append(
            Measure(
                f"(e) naive update_or_create, extrapolated to {args.rows}",
                naive * args.rows / args.naive_rows,
                target=">= 100x (b)",
                note=f"{args.naive_rows / naive:.0f} rows/s",
            )
        )

    print(f"memory: full sync of {args.compare_rows} rows ...", flush=True)
    recreate_database(args.database)
    with FakeSodaServer(rows=args.compare_rows) as server:
        env = manage_env(args.database, server.url)
        run_command(["migrate", "--noinput", "-v", "0"], env)
        download_pages(server.url, args.page_size)
        _, small_rss, _ = run_command(["sync_trees", "--full", *paging], env)

    full = next(m for m in measures if m.name.startswith("(b)"))
    print()
    print(
        f"{'measure':54} {'seconds':>8} {'sync s':>7} {'x (a)':>6} {'x (a0)':>6} {'RSS MB':>6}"
        "  target / note"
    )
    for m in measures:
        sync_s = f"{m.sync_seconds:7.2f}" if m.sync_seconds is not None else " " * 7
        rss = f"{m.rss_mb:6.0f}" if m.rss_mb is not None else " " * 6
        print(
            f"{m.name:54} {m.seconds:8.2f} {sync_s} {m.seconds / floor:6.2f} "
            f"{m.seconds / bare_floor:6.2f} {rss}  {m.target} {m.note}"
        )
    incremental = next(m for m in measures if m.name.startswith("(d)"))
    naive_m = next(m for m in measures if m.name.startswith("(e)"))
    print()
    print(
        f"(d)/(b): {incremental.seconds / full.seconds:.1%} end to end, "
        f"{incremental.sync_seconds / full.sync_seconds:.1%} sync time (target <= 5%)"
    )
    print(f"(e)/(b): {naive_m.seconds / full.seconds:.0f}x (target >= 100x)")
    print(
        f"peak RSS: {full_rss:.0f} MB at {args.rows} rows, {small_rss:.0f} MB at "
        f"{args.compare_rows} rows ({full_rss / small_rss - 1:+.0%}; target <= 300 MB, "
        "within 20%)"
    )


if __name__ == "__main__":
    main()

"""`manage.py sync_trees` as operators run it: a real process, its output and exit status."""

import fcntl
import gzip
import json
import os
import pty
import random
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.db import other_connection
from tests.fakes.soda import write_bulk_csv
from trees import files, sync
from trees.models import SyncRun, Tree

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def command_env(soda_url: str = "http://127.0.0.1:1", **extra: str) -> dict[str, str]:
    """The test database and cache namespace, and a Socrata that fails fast."""
    db = connection.settings_dict
    return {
        **os.environ,
        "ENV_FILE": "/nonexistent",
        "SECRET_KEY": "test-" + "k" * 60,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "SOCRATA_URL": soda_url,
        "SOCRATA_MAX_ATTEMPTS": "2",
        **extra,
    }


def start(*args: str, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_trees", *args],
        cwd=ROOT,
        env=env,
        text=True,
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen},
    )


def sync_trees(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    process = start(*args, env=env)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def server(soda_server_factory):
    return soda_server_factory(rows=300)


def test_a_sync_exits_zero_and_ends_with_a_summary(server):
    result = sync_trees(env=command_env(server.url))
    assert result.returncode == 0, result.stderr
    [summary] = [line for line in result.stdout.splitlines() if line.startswith("Sync ")]
    assert "(full) done in" in summary
    assert summary.endswith(
        "fetched 300, inserted 300, updated 0, unchanged 0, deleted 0, rejected 0"
    )
    assert Tree.objects.count() == 300


def test_the_second_default_run_is_incremental(server):
    sync_trees(env=command_env(server.url))
    server.update_rows(4, health="Poor")
    result = sync_trees(env=command_env(server.url))
    assert result.returncode == 0, result.stderr
    assert "(incremental)" in result.stdout
    assert "fetched 4, inserted 0, updated 4" in result.stdout


def test_a_mass_delete_fails_naming_the_option_and_passes_with_it(server):
    sync_trees(env=command_env(server.url))
    server.delete_rows(100)
    refused = sync_trees("--full", env=command_env(server.url))
    assert refused.returncode == 1
    assert "100 of the 300 stored trees" in refused.stderr
    assert "--allow-mass-delete" in refused.stderr
    assert Tree.objects.count() == 300
    allowed = sync_trees("--full", "--allow-mass-delete", env=command_env(server.url))
    assert allowed.returncode == 0, allowed.stderr
    assert "deleted 100" in allowed.stdout
    assert Tree.objects.count() == 200


def test_quiet_mode_prints_only_the_summary(server):
    result = sync_trees("--verbosity", "0", env=command_env(server.url))
    assert result.returncode == 0
    assert result.stderr == ""
    assert len(result.stdout.strip().splitlines()) == 1


def test_progress_is_shown_on_a_terminal(server):
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = start("--page-size", "100", env=command_env(server.url), stderr=terminal)
    os.close(terminal)
    process.communicate(timeout=120)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.returncode == 0
    assert b"300/300" in shown  # rows done of the total
    assert b"rows/s" in shown  # and the rate


def test_dry_run_writes_nothing(server):
    result = sync_trees("--dry-run", env=command_env(server.url))
    assert result.returncode == 0
    assert "Dry run (nothing written)" in result.stdout
    assert "inserted 300" in result.stdout
    assert not Tree.objects.exists()


def test_limit_stops_after_that_many_rows(server):
    result = sync_trees("--limit", "120", "--page-size", "50", env=command_env(server.url))
    assert result.returncode == 0
    assert "fetched 120" in result.stdout
    assert Tree.objects.count() == 120


def test_json_format(server):
    result = sync_trees("--format", "json", env=command_env(server.url))
    assert result.returncode == 0, result.stderr
    assert Tree.objects.count() == 300


def test_from_file_reads_the_portals_bulk_csv(server, tmp_path):
    path = tmp_path / "2015_Street_Tree_Census_-_Tree_Data.csv"
    server.write_bulk_csv(path)
    result = sync_trees("--from-file", str(path), "--page-size", "70", env=command_env())
    assert result.returncode == 0, result.stderr
    assert "fetched 300, inserted 300" in result.stdout
    assert "rejected 0" in result.stdout
    first = server.rows()[0]
    tree = Tree.objects.get(tree_id=int(first["tree_id"]))
    assert tree.surveyed_on.isoformat() == first["created_at"][:10]  # from MM/DD/YYYY
    assert tree.zipcode == first["zipcode"]  # from the "postcode" header
    assert SyncRun.objects.get().source == str(path)


def test_from_file_reads_the_apis_json(server, tmp_path):
    path = tmp_path / "trees.json"
    path.write_text(json.dumps(server.rows()))
    result = sync_trees("--from-file", str(path), env=command_env())
    assert result.returncode == 0, result.stderr
    assert Tree.objects.count() == 300


def test_a_missing_file_is_a_clear_error(tmp_path):
    result = sync_trees("--from-file", str(tmp_path / "nope.csv"), env=command_env())
    assert result.returncode == 1
    assert f"Cannot read {tmp_path / 'nope.csv'}: no such file" in result.stderr


def test_an_unreachable_socrata_exits_non_zero_and_records_the_failure():
    result = sync_trees(env=command_env("http://127.0.0.1:1"))
    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: Sync failed: Socrata:")
    assert "http://127.0.0.1:1/resource/uvpi-gqnh" in result.stderr
    assert "Traceback" not in result.stderr
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert "127.0.0.1:1" in run.error_message


def test_a_second_sync_is_refused_while_one_runs(server):
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [sync.ADVISORY_LOCK_ID])
        result = sync_trees(env=command_env(server.url))
    assert result.returncode == 75
    assert "Another sync is running" in result.stderr
    assert not Tree.objects.exists()


@pytest.mark.parametrize(
    ("sent", "code", "reason"),
    [
        (signal.SIGTERM, 143, "interrupted by SIGTERM"),
        (signal.SIGINT, 130, "interrupted (Ctrl-C)"),
    ],
)
def test_an_interrupted_sync_writes_nothing_and_the_next_one_completes(server, sent, code, reason):
    server.slow(30, offset=100)  # the second page hangs: the sync is mid-run
    process = start("--page-size", "100", env=command_env(server.url))
    deadline = time.monotonic() + 60
    while server.page_requests < 2:
        assert time.monotonic() < deadline, "the sync never asked for its second page"
        time.sleep(0.05)
    time.sleep(0.3)  # let the first page land in the (uncommitted) transaction
    process.send_signal(sent)
    _, err = process.communicate(timeout=30)
    assert process.returncode == code, err
    assert f"{reason}; nothing was written" in err
    assert not Tree.objects.exists()
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert reason in run.error_message

    server.clear_faults()
    again = sync_trees(env=command_env(server.url))
    assert again.returncode == 0, again.stderr
    assert Tree.objects.count() == 300


@pytest.mark.parametrize("soda_server", [{"rows": 50, "app_token": "t0ken-xyz"}], indirect=True)
def test_the_token_comes_from_the_settings_and_is_never_printed(soda_server, tmp_path):
    (tmp_path / "token").write_text("t0ken-xyz\n")
    result = sync_trees(
        env=command_env(
            soda_server.url, SOCRATA_APP_TOKEN_FILE=str(tmp_path / "token"), LOG_LEVEL="DEBUG"
        )
    )
    assert result.returncode == 0, result.stderr
    assert set(soda_server.app_tokens) == {"t0ken-xyz"}
    assert "t0ken-xyz" not in result.stdout + result.stderr


def test_a_bad_page_size_is_refused():
    result = sync_trees("--page-size", "60000", env=command_env())
    assert result.returncode == 1
    assert "--page-size must be between 1 and 50000" in result.stderr


# --- files: only --full deletes; an unusable file is one clear line (issue 10) ---------------


def first_rows_as_bulk_csv(server, path: Path, rows: int) -> Path:
    server.write_bulk_csv(path)
    with path.open() as whole:
        kept = [next(whole) for _ in range(rows + 1)]
    path.write_text("".join(kept))
    return path


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The failure as operators see it: exit 1 and exactly one line on stderr."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_file_without_full_inserts_and_updates_but_deletes_nothing(server, tmp_path):
    assert sync_trees(env=command_env(server.url)).returncode == 0
    path = first_rows_as_bulk_csv(server, tmp_path / "ten.csv", 10)
    result = sync_trees("--from-file", str(path), env=command_env())
    assert result.returncode == 0, result.stderr
    assert "fetched 10," in result.stdout
    assert "deleted 0," in result.stdout
    assert Tree.objects.count() == 300


def test_a_file_with_full_deletes_the_trees_it_lacks(server, tmp_path):
    assert sync_trees(env=command_env(server.url)).returncode == 0
    path = first_rows_as_bulk_csv(server, tmp_path / "ten.csv", 10)
    refused = sync_trees("--from-file", str(path), "--full", env=command_env())
    assert refused.returncode == 1  # 290 of 300 is a mass delete: it must be asked for
    assert "--allow-mass-delete" in refused.stderr
    assert Tree.objects.count() == 300
    result = sync_trees(
        "--from-file", str(path), "--full", "--allow-mass-delete", env=command_env()
    )
    assert result.returncode == 0, result.stderr
    assert "deleted 290," in result.stdout
    assert Tree.objects.count() == 10


@pytest.mark.parametrize("full", [[], ["--full"]], ids=["default", "full"])
@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("header.csv", "tree_id,status,health\n", "holds no trees: a header and no rows"),
        ("rows.json", "[]", "holds no trees: an empty JSON array"),
        ("empty.csv", "", "is empty: it holds no trees"),
        ("tree.txt", '{"tree_id": "1", "status": "Alive"}', "holds one JSON object"),
    ],
)
def test_a_file_with_no_trees_is_an_error_and_changes_nothing(
    server, tmp_path, name, content, reason, full
):
    assert sync_trees(env=command_env(server.url)).returncode == 0
    path = tmp_path / name
    path.write_text(content)
    result = sync_trees("--from-file", str(path), *full, env=command_env())
    assert reason in one_line_error(result)
    assert Tree.objects.count() == 300
    failed = SyncRun.objects.order_by("-id").first()
    assert failed.status == SyncRun.Status.FAILED
    assert reason in failed.error_message


def _gzip_csv() -> bytes:
    return gzip.compress(b"tree_id,status\n1,Alive\n")


HOSTILE_FILES = {
    "random-bytes": (lambda: random.Random(0).randbytes(200_000), "is not a CSV or JSON file"),
    "gzip": (_gzip_csv, "is gzip-compressed: decompress it first"),
    "png": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "is a PNG image"),
    "latin-1-header": (
        lambda: "tree_id,adresse_\xe9\n1,x\n".encode("latin-1"),
        "its first line is not UTF-8 text",
    ),
    "header-over-1-MiB": (
        lambda: b"tree_id," + b"a" * files.MAX_RECORD_BYTES,
        "the header line is larger than 1 MiB",
    ),
    "csv-row-over-1-MiB": (
        lambda: b"tree_id,address\n1,x\n2," + b"a" * files.MAX_RECORD_BYTES + b"\n",
        "row 2 is larger than 1 MiB",
    ),
    "json-row-over-1-MiB": (
        lambda: b'[{"tree_id": "1"}, {"address": "' + b"a" * files.MAX_RECORD_BYTES + b'"}]',
        "row 2 is larger than 1 MiB",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE_FILES)
def test_a_hostile_file_ends_in_one_clear_line_and_writes_nothing(tmp_path, kind):
    make, reason = HOSTILE_FILES[kind]
    path = tmp_path / ("trees.json" if kind.startswith("json") else "trees.csv")
    path.write_bytes(make())
    result = sync_trees("--from-file", str(path), env=command_env())
    assert reason in one_line_error(result)
    assert not Tree.objects.exists()
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert reason in run.error_message


def peak_rss_mib(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run sync_trees under a small parent whose only child it is, and report its peak RSS."""
    measure = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "manage.py", "sync_trees", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    *err, rss_kib = done.stderr.strip().splitlines()
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(err))
    return result, int(rss_kib) / 1024


@pytest.mark.parametrize(
    ("start", "end", "size_mib", "reason"),
    [
        (b"tree_id,", b"\n1\n", 400, "the header line is larger than 1 MiB"),
        (b"tree_id,address\n1,", b"\n", 300, "row 1 is larger than 1 MiB"),
    ],
    ids=["400-MB-header", "300-MB-row"],
)
def test_memory_stays_bounded_whatever_the_file(tmp_path, start, end, size_mib, reason):
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.write(start)
        chunk = b"a" * (1 << 20)
        for _ in range(size_mib):
            file.write(chunk)
        file.write(end)
    try:
        result, rss = peak_rss_mib("--from-file", str(path), env=command_env())
    finally:
        path.unlink()
    assert reason in one_line_error(result)
    assert rss < 300, f"peak RSS {rss:.0f} MiB"


@pytest.mark.parametrize(("name", "dumps"), [("bad.csv", None), ("bad.json", json.dumps)])
def test_rows_with_bad_bytes_in_a_file_are_rejected_and_the_rest_land(
    server, tmp_path, name, dumps
):
    rows = list(server.expected_rows().values())[:20]
    rows[4]["address"] = "@NUL"
    rows[9]["address"] = "@FF"
    path = tmp_path / name
    if dumps is None:
        write_bulk_csv(path, rows)
        nul, ff = b"\x00", b"\xff"
    else:
        path.write_text(dumps(rows))
        nul, ff = b"\\u0000", b"\xff"
    path.write_bytes(path.read_bytes().replace(b"@NUL", nul).replace(b"@FF", ff))
    result = sync_trees("--from-file", str(path), env=command_env())
    assert result.returncode == 0, result.stderr
    assert "fetched 20, inserted 18," in result.stdout
    assert "rejected 2" in result.stdout
    assert "rejected row 5: address holds a NUL byte" in result.stdout
    assert "rejected row 10: address is not valid UTF-8" in result.stdout


# --- secrets in SOCRATA_URL (issue 10, finding 9) ---------------------------------------------


@pytest.mark.parametrize("soda_server", [{"rows": 50, "app_token": "t0ken-in-url"}], indirect=True)
def test_a_token_inside_socrata_url_is_used_but_never_stored_or_printed(soda_server):
    url = f"{soda_server.url}/?$$app_token=t0ken-in-url"
    result = sync_trees("-v", "2", env=command_env(url, LOG_LEVEL="DEBUG"))
    assert result.returncode == 0, result.stderr
    assert set(soda_server.app_tokens) == {"t0ken-in-url"}  # it was used, as the header
    assert all("t0ken-in-url" not in r.raw_query for r in soda_server.requests)
    assert "GET /resource/" in result.stdout  # the DEBUG log of every request is there...
    assert "t0ken-in-url" not in result.stdout + result.stderr  # ...without the token
    run = SyncRun.objects.values().get()
    assert "t0ken-in-url" not in repr(run)
    assert run["source"] == f"{soda_server.url}/resource/uvpi-gqnh.csv"


# --- the database going away mid-run (issue 10, finding 5) ------------------------------------


def test_a_database_that_goes_away_mid_sync_ends_in_one_line(server):
    db = connection.settings_dict
    connection.ensure_connection()
    own = connection.connection.info.backend_pid
    held = server.hold(offset=100)  # the second page waits: the first is staged, uncommitted
    process = start("--page-size", "100", env=command_env(server.url))
    assert held.arrived.wait(60), "the sync never asked for its second page"
    with other_connection(dbname="postgres") as admin:
        admin.execute(f'ALTER DATABASE "{db["NAME"]}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s",
                [db["NAME"], own],
            )
            held.release()
            out, err = process.communicate(timeout=60)
        finally:
            admin.execute(f'ALTER DATABASE "{db["NAME"]}" ALLOW_CONNECTIONS true')
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    line = one_line_error(result)
    assert line.startswith("CommandError: Sync failed: database error:")
    assert "nothing was written" in line
    assert not Tree.objects.exists()

    again = sync_trees(env=command_env(server.url))  # the database is back
    assert again.returncode == 0, again.stderr
    first, second = SyncRun.objects.order_by("id")
    assert first.status == SyncRun.Status.FAILED
    assert second.status == SyncRun.Status.SUCCEEDED
    assert Tree.objects.count() == 300

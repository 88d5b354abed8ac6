"""`manage.py sync_trees` as operators run it: a real process, its output and exit status."""

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from trees import sync
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
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
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

"""The exports through the production server (gunicorn, config/gunicorn.py): streaming to a
slow client, gzip on the wire, and real clients nobody here wrote (pandas, geopandas/GDAL)."""

import socket
import time

import pytest
from django.db import connection

from tests.security.server import database_env, gunicorn
from trees.cache import bump_data_version

ROWS_SQL = "benchmarks/census_rows.sql"
ROWS = 30_000  # some 12 MB of CSV: more than the sockets' buffers hold
EXPORT = "/api/v1/trees/export.csv"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def generated_census():
    """ROWS census-like trees, committed (gunicorn reads them), from the benchmark's SQL."""
    from tests.security.server import ROOT

    sql = (ROOT / ROWS_SQL).read_text().replace("%(rows)s", str(ROWS))
    with connection.cursor() as cursor:
        cursor.execute(sql)
    bump_data_version()
    return ROWS


def slow_get(url: str, path: str, *, seconds: float) -> bytes:
    """GET `path`, reading the response slowly enough to take about `seconds` in all."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    received = bytearray()
    started = time.monotonic()
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
            if time.monotonic() - started < seconds:
                time.sleep(0.05)
    return bytes(received)


def test_a_client_reading_slower_than_the_worker_timeout_gets_the_whole_export(
    generated_census,
):
    env = database_env(SECRET_KEY="export-" + "k" * 60, GUNICORN_TIMEOUT="2")
    with gunicorn(env) as server:
        raw = slow_get(server.url, EXPORT, seconds=6)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:200]
    assert body.count(b"\n") == ROWS + 1  # the header row and every tree
    assert "WORKER TIMEOUT" not in server.logs()

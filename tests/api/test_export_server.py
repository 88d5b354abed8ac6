"""The exports through the production server (gunicorn, config/gunicorn.py): streaming to a
slow client, gzip and HEAD on the wire, and clients nobody here wrote (pandas, geopandas
through pyogrio's GDAL) reading a whole export from a URL in one call."""

import gzip
import json
import socket
import time
import uuid

import pytest
import requests
from django.db import connection

from tests.security.server import ROOT, database_env, gunicorn
from trees import export
from trees.cache import bump_data_version

ROWS = 30_000  # some 12 MB of CSV: far more than the sockets' buffers hold
CSV = "/api/v1/trees/export.csv"
GEOJSON = "/api/v1/trees/export.geojson"
NDJSON = "/api/v1/trees/export.ndjson"

pytestmark = pytest.mark.django_db(transaction=True)  # committed: gunicorn reads the rows


def generate(rows: int) -> int:
    sql = (ROOT / "benchmarks" / "census_rows.sql").read_text().replace("%(rows)s", str(rows))
    with connection.cursor() as cursor:
        cursor.execute(sql)
    bump_data_version()
    return rows


def server_env(**extra: str) -> dict[str, str]:
    """This module's tests export more often than a client may (API_EXPORT_THROTTLE_RATE)."""
    return database_env(
        SECRET_KEY="export-" + "k" * 60, API_EXPORT_THROTTLE_RATE="1000/minute", **extra
    )


@pytest.fixture
def server():
    with gunicorn(server_env()) as running:
        yield running


def slow_get(url: str, path: str, *, seconds: float) -> bytes:
    """GET `path` over a small receive buffer, reading slowly for about `seconds`."""
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


def test_a_client_reading_slower_than_the_worker_timeout_gets_the_whole_export():
    generate(ROWS)
    with gunicorn(server_env(GUNICORN_TIMEOUT="2")) as server:
        raw = slow_get(server.url, CSV, seconds=6)  # three times the timeout
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")), head[:200]
    assert body.count(b"\n") == ROWS + 1  # the header row and every tree
    assert "WORKER TIMEOUT" not in server.logs()


def test_gzip_on_the_wire_is_one_stream_of_the_whole_export(server):
    generate(2000)
    response = requests.get(
        server.url + CSV, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert "Content-Length" not in response.headers  # streamed, not buffered
    plain = requests.get(server.url + CSV, headers={"Accept-Encoding": "identity"}, timeout=60)
    assert gzip.decompress(raw) == plain.content
    assert plain.content.count(b"\n") == 2001


def test_head_through_gunicorn_sends_headers_only(server):
    generate(100)
    head = requests.head(server.url + GEOJSON, timeout=30)
    get = requests.get(server.url + GEOJSON, timeout=30)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Disposition"] == get.headers["Content-Disposition"]
    assert len(get.json()["features"]) == 100
    server.process.terminate()
    server.process.wait(timeout=30)
    assert "no-body response" not in server.logs()


def test_pandas_reads_the_whole_csv_from_the_url(server):
    import pandas

    generate(5000)
    frame = pandas.read_csv(server.url + CSV)
    assert list(frame.columns) == list(export.EXPORT_COLUMNS)
    assert len(frame) == 5000
    assert frame["tree_id"].is_unique
    assert frame["root_stone"].dtype == bool  # `true`/`false` read as booleans


def test_pandas_reads_a_filtered_gzipped_csv(server):
    import pandas

    generate(5000)
    url = f"{server.url}{CSV}?borough=Queens&fields=tree_id,borough,tree_dbh"
    frame = pandas.read_csv(url, storage_options={"Accept-Encoding": "gzip"}, compression="gzip")
    expected = requests.get(url, timeout=60).content.count(b"\n") - 1
    assert list(frame.columns) == ["tree_id", "tree_dbh", "borough"]
    assert len(frame) == expected > 0
    assert set(frame["borough"]) == {"Queens"}


def test_geopandas_reads_the_whole_geojson_from_the_url(server):
    import geopandas

    generate(5000)
    frame = geopandas.read_file(server.url + GEOJSON, engine="pyogrio")
    assert len(frame) == 5000
    assert frame.geometry.geom_type.unique().tolist() == ["Point"]
    assert frame.total_bounds[0] > -74.3
    assert frame.total_bounds[2] < -73.6
    assert "species_latin_name" in frame.columns


def test_gdal_reads_the_ndjson_export_as_geojson_sequence(server):
    import geopandas

    generate(5000)
    frame = geopandas.read_file(server.url + NDJSON, engine="pyogrio")
    assert len(frame) == 5000
    first = json.loads(requests.get(server.url + NDJSON, timeout=60).text.splitlines()[0])
    assert frame.iloc[0]["tree_id"] == first["id"]


def test_a_client_gone_mid_export_leaves_the_worker_serving(server):
    generate(ROWS)
    with requests.get(server.url + CSV, stream=True, timeout=60) as response:
        assert next(response.iter_content(65536)).startswith(b"tree_id,")
    # The worker (the only one) notices at its next write, cancels the COPY, and goes on.
    after = requests.get(f"{server.url}{CSV}?fields=tree_id&dbh_min=0", timeout=60)
    assert after.status_code == 200
    assert after.content.count(b"\n") == ROWS + 1
    server.process.terminate()
    server.process.wait(timeout=30)
    assert "Traceback" not in server.logs()


def test_exports_past_their_allowance_are_a_429_with_retry_after_through_gunicorn():
    generate(50)
    env = database_env(
        SECRET_KEY="export-" + "k" * 60,
        API_EXPORT_THROTTLE_RATE="2/hour",
        # Counters of its own: other tests' servers count in the same Redis for the hour.
        CACHE_KEY_PREFIX=f"test-export-{uuid.uuid4().hex}",
    )
    with gunicorn(env) as server:
        answers = [requests.get(server.url + CSV, timeout=30) for _ in range(3)]
        listing = requests.get(server.url + "/api/v1/trees/", timeout=30)
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[0].text.count("\n") == 51  # the header row and every tree
    assert answers[2].json()["status"] == 429
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 3600
    assert answers[2].headers["RateLimit-Limit"] == "2"
    assert answers[2].headers["RateLimit-Remaining"] == "0"
    assert listing.status_code == 200  # the general allowance is counted apart

"""No secret ever leaves the process: not in a response, an error page, a log line or a SyncRun.

The three secrets get real, recognisable values through their *_FILE variables, as in
production (Docker secrets); then the production server answers every kind of request (with
a working database, and with a broken one for 500s), the sync command runs against a Socrata
that requires the token and then echoes it back in an error, and every byte they produced is
searched for each value. (The image and container configuration are checked by
scripts/docker-smoke.)
"""

import secrets
import subprocess
import sys

import pytest
import requests

from tests.live import sync_census
from tests.security.server import ROOT, database_env, gunicorn
from trees.models import SyncRun

pytestmark = pytest.mark.django_db(transaction=True)

SECRETS = {
    "SECRET_KEY": "django-key-" + secrets.token_urlsafe(40),
    "DATABASE_PASSWORD": "db-password-" + secrets.token_urlsafe(16),
    "SOCRATA_APP_TOKEN": "app-token-" + secrets.token_urlsafe(16),
}

# One of each kind of answer: data, documents, redirects and every error the site gives.
REQUESTS = [
    ("GET", "/api/v1/trees/?page_size=5"),
    ("GET", "/api/v1/trees/?format=geojson&page_size=5"),
    ("GET", "/api/v1/trees/1/"),
    ("GET", "/api/v1/trees/987654321/"),  # 404 JSON
    ("GET", "/api/v1/trees/?bbox=nowhere"),  # 400
    ("GET", "/api/v1/trees/?cursor=bogus"),  # 404 for a cursor
    ("POST", "/api/v1/trees/"),  # 405
    ("GET", "/api/v1/species/"),
    ("GET", "/api/v1/stats/"),
    ("GET", "/api/v1/schema/"),
    ("GET", "/api/v1/docs/"),
    ("GET", "/api/v1/docs/?script="),
    ("GET", "/admin/"),  # redirect to the login
    ("GET", "/admin/login/"),
    ("POST", "/admin/login/"),  # 403: no CSRF token
    ("GET", "/no-such-page/"),  # 404 HTML
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


@pytest.fixture
def secret_env(tmp_path, static_root) -> dict[str, str]:
    files = {}
    for name, value in SECRETS.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as secret files often end
        files[f"{name}_FILE"] = str(path)
    return database_env(DEBUG="false", STATIC_ROOT=static_root, **files)


def exchange(server_url: str, method: str, path: str) -> str:
    """The whole response as text: status, headers and body."""
    response = requests.request(method, server_url + path, allow_redirects=False, timeout=30)
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{method} {path} -> {response.status_code}\n{headers}\n\n{response.text}"


def assert_no_secret(text: str, where: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} appears in {where}"


def test_no_secret_in_any_response_or_server_log(secret_env, soda_server_factory):
    sync_census(soda_server_factory, rows=50)
    with gunicorn(secret_env) as server:
        answers = [exchange(server.url, method, path) for method, path in REQUESTS]
    statuses = [answer.split("\n", 1)[0] for answer in answers]
    assert "POST /api/v1/trees/ -> 405" in statuses
    assert "POST /admin/login/ -> 403" in statuses
    assert "GET /no-such-page/ -> 404" in statuses
    for answer in answers:
        assert_no_secret(answer, answer.split("\n", 1)[0])
    assert "GET /api/v1/trees/?page_size=5" in server.logs()  # the access log was captured
    assert_no_secret(server.logs(), "the server's log")


def test_no_secret_in_a_database_outage_answer_or_its_log(secret_env):
    # A database that does not exist: every page that needs it fails, as in an outage.
    broken = {**secret_env, "DATABASE_URL": secret_env["DATABASE_URL"] + "_missing"}
    with gunicorn(broken) as server:
        api = exchange(server.url, "GET", "/api/v1/trees/")
        readiness = exchange(server.url, "GET", "/readyz")
    assert api.startswith("GET /api/v1/trees/ -> 503")
    assert '{"status":503,"detail":"The database is unavailable; try again shortly."}' in api
    assert readiness.startswith("GET /readyz -> 503")
    assert "the database is unavailable" in server.logs()  # the error is logged
    assert_no_secret(api + readiness, "the error responses")
    assert_no_secret(server.logs(), "the server's log")


def test_no_secret_in_sync_output_or_sync_runs(secret_env, soda_server_factory):
    soda = soda_server_factory(rows=40, app_token=SECRETS["SOCRATA_APP_TOKEN"])
    env = {**secret_env, "SOCRATA_URL": soda.url, "SOCRATA_MAX_ATTEMPTS": "2"}

    def sync_trees(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "sync_trees", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    succeeded = sync_trees("--verbosity", "2")
    assert succeeded.returncode == 0, succeeded.stderr
    assert set(soda.app_tokens) == {SECRETS["SOCRATA_APP_TOKEN"]}  # it was sent, as a header
    # A portal (or a proxy) that echoes the token back in its error page.
    echo = f"Invalid request {soda.url}/resource/x.csv?$$app_token={SECRETS['SOCRATA_APP_TOKEN']}"
    soda.respond_with(500, {"message": echo}, times=10)
    failed = sync_trees("--full", "--verbosity", "2")
    assert failed.returncode == 1
    assert "HTTP 500" in failed.stderr

    for result in (succeeded, failed):
        assert_no_secret(result.stdout + result.stderr, "the output of sync_trees")
    runs = list(SyncRun.objects.values())
    assert [run["status"] for run in runs] == ["failed", "succeeded"]
    assert_no_secret(repr(runs), "the sync runs")

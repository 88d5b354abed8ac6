import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.db import other_connection


def test_healthz_answers_without_touching_anything(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_healthz_ignores_the_host_header(client):
    # A healthcheck may call the container by IP while ALLOWED_HOSTS names the public host.
    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200


@pytest.mark.django_db
def test_readyz_checks_postgres_and_redis(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok"},
        "sync": "idle",
    }
    assert len(queries) == 1
    assert "pg_locks" in queries[0]["sql"]


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_down_but_stays_ready(client, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    response = client.get("/readyz")
    assert response.status_code == 200  # the API answers without Redis, only slower
    assert response.json() == {
        "status": "degraded",
        "checks": {"postgres": "ok", "redis": "down"},
        "sync": "idle",
    }


@pytest.mark.django_db(transaction=True)
def test_readyz_names_postgres_when_it_is_down(client, caplog):
    original = connection.settings_dict
    connection.close()
    connection.settings_dict = {**original, "PORT": 1}
    try:
        with caplog.at_level(logging.WARNING):
            response = client.get("/readyz")
    finally:
        connection.close()
        connection.settings_dict = original
    assert response.status_code == 503
    assert response.json()["checks"] == {"postgres": "down", "redis": "ok"}
    # Its own warning names what is down; Django's ERROR line for each 503 (django.request)
    # would double every probe's log during an outage.
    assert {r.name for r in caplog.records} == {"trees.middleware"}


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405


@pytest.fixture
def limited_statements():
    """The web process's statement_timeout, on this test's fresh connections."""
    from trees.database import limit_statements, unlimit_statements

    connection.close()
    limit_statements(0.2)
    yield
    unlimit_statements()
    connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("limited_statements")
def test_a_web_statement_that_runs_too_long_is_cancelled():
    from django.db import OperationalError

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "200ms"
        with pytest.raises(OperationalError, match="statement timeout"):
            cursor.execute("SELECT pg_sleep(2)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("limited_statements")
def test_readyz_never_waits_for_the_tree_tables_lock(client):
    with other_connection(autocommit=False) as holder:
        # What the old first load held for its whole run; any wait here ends in a timeout (503).
        holder.execute("LOCK TABLE trees_tree IN ACCESS EXCLUSIVE MODE")
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["postgres"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_says_ok_after_postgres_dropped_its_connection(client):
    # As after a Postgres restart or failover: the worker's open connection is dead, but
    # Postgres answers a new one, so the probe must not take the instance out of rotation.
    import time

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with other_connection() as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while killer.execute("SELECT FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["postgres"] == "ok"

"""Error bodies: always JSON, always `status` and `detail`, `errors` keyed by parameter."""

import logging

import pytest
from django.test import Client, override_settings
from django.urls import path
from rest_framework.decorators import api_view

from config import urls as project_urls
from trees.api import errors
from trees.api.errors import error_body, exception_handler

TREES = "/api/v1/trees/"


def test_bad_parameter_body_lists_each_parameter_with_its_problems(api_client, census):
    body = api_client.get(TREES, {"zipcode": "x", "page_size": "0"}).json()
    assert body == {
        "status": 400,
        "detail": "Invalid query parameter(s): zipcode.",
        "errors": {"zipcode": ["Enter a ZIP code: 1 to 5 digits."]},
    }


def test_paging_parameter_error_is_reported_after_the_filters_pass(api_client, census):
    body = api_client.get(TREES, {"page_size": "0"}).json()
    assert body["errors"] == {"page_size": ["Must be a whole number from 1 to 1000."]}


def test_not_found_and_not_allowed_bodies(api_client, census):
    assert api_client.get(f"{TREES}999/").json() == {
        "status": 404,
        "detail": "No Tree matches the given query.",
    }
    assert api_client.delete(f"{TREES}101/").json() == {
        "status": 405,
        "detail": 'Method "DELETE" not allowed.',
    }


def test_error_body_leaves_out_empty_errors():
    assert error_body(404, "Not found.") == {"status": 404, "detail": "Not found."}


def test_unknown_exception_is_left_to_django(rf):
    assert exception_handler(RuntimeError("boom"), {"request": rf.get("/")}) is None


@api_view(["GET"])
def failing_view(request):
    raise RuntimeError("a bug")


# The project's URLconf and error handlers, plus two views that crash.
urlpatterns = [
    *project_urls.urlpatterns,
    path("api/v1/failing/", failing_view),
    path("elsewhere/", failing_view),
]
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@override_settings(ROOT_URLCONF=__name__)
def test_a_crash_under_the_api_is_a_json_500(db):
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/failing/")
    assert response.status_code == 500
    assert response.json() == {"status": 500, "detail": "Server error."}
    assert not client.get("/elsewhere/")["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("url", ["/api/v1/trees/?borough=x", "/api/v1/trees/999/"])
def test_error_responses_are_not_cacheable_as_successes(api_client, census, url):
    response = api_client.get(url)
    assert response.status_code >= 400
    assert "ETag" not in response


# --- Django's own 400s are the API's JSON too ------------------------------------------------


def test_too_many_query_parameters_is_a_json_400(client, settings):
    query = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.get(f"{TREES}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": 400,
        "detail": "Too many query parameters: at most 1000 are read.",
    }


@pytest.mark.django_db
def test_a_suspicious_request_is_a_json_400_without_echoing_it(client):
    response = client.get(TREES, HTTP_HOST="evil.example")  # not in ALLOWED_HOSTS
    assert response.status_code == 400
    assert response.json() == {"status": 400, "detail": "Bad request."}


def test_a_bad_request_elsewhere_stays_html(client, settings):
    query = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.get(f"/admin/login/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


# --- Postgres down: a JSON 503 with Retry-After, cached or not --------------------------------


@pytest.fixture
def postgres_down(transactional_db):
    """Point the connection at a closed port for this test; the real database comes back after.

    Every cacheable request now needs Postgres (for the data version), and every other one
    that reads data: so each answers 503 until it returns.
    """
    from django.db import connection

    from tests.security.server import free_port

    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=free_port())
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def assert_database_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "status": 503,
        "detail": "The database is unavailable; try again shortly.",
    }


@pytest.mark.parametrize(
    "url", [TREES, f"{TREES}101/?format=geojson", "/api/v1/species/", "/api/v1/stats/"]
)
def test_postgres_down_is_a_json_503(api_client, postgres_down, url):
    assert_database_unavailable(api_client.get(url))


@pytest.mark.django_db(transaction=True)
def test_postgres_down_is_a_503_for_a_response_cached_before(api_client, census, request):
    # A cached response cannot be trusted without the version: a sync may have committed.
    api_client.get(TREES)
    assert api_client.get(TREES)["X-Cache"] == "HIT"
    request.getfixturevalue("postgres_down")
    assert_database_unavailable(api_client.get(TREES))


def test_a_database_error_in_a_view_is_a_503(rf):
    from django.db import OperationalError
    from rest_framework.request import Request

    context = {"request": Request(rf.get(TREES))}
    response = exception_handler(OperationalError("connection refused"), context)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.data["status"] == 503


def test_postgres_down_logs_one_warning_per_interval(
    api_client, postgres_down, caplog, monkeypatch
):
    monkeypatch.setattr(errors, "_database_warned_at", None)  # as if none was logged yet
    with caplog.at_level(logging.WARNING, logger="trees"):
        for _ in range(5):
            api_client.get(TREES)
    assert [r.name for r in caplog.records if r.name.startswith("trees")] == ["trees.api.errors"]


@pytest.mark.parametrize("url", [TREES, f"{TREES}101/"])  # cached view, and one that is not
def test_postgres_down_logs_nothing_else_per_request(
    api_client, postgres_down, caplog, monkeypatch, url
):
    # Django logs an ERROR line for every 5xx (django.request): an outage would write one
    # per request after all, beside the warning per interval.
    monkeypatch.setattr(errors, "_database_warned_at", None)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            api_client.get(url)
    assert [r.name for r in caplog.records] == ["trees.api.errors"]


def test_gunicorn_answers_a_json_503_when_postgres_is_down():
    import requests

    from tests.security.server import database_env, free_port, gunicorn

    env = database_env(SECRET_KEY="pgdown-" + "k" * 60)
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    with gunicorn(env) as server:
        response = requests.get(f"{server.url}{TREES}", timeout=30)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["status"] == 503

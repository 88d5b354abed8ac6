"""Error bodies: always JSON, always `status` and `detail`, `errors` keyed by parameter."""

import pytest
from django.test import Client, override_settings
from django.urls import path
from rest_framework.decorators import api_view

from config import urls as project_urls
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

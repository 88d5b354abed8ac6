"""Security headers on every kind of response: admin, API (computed and cached), docs, errors."""

import pytest

pytestmark = pytest.mark.django_db

URLS = [
    "/admin/login/",
    "/api/v1/trees/",
    "/api/v1/trees/?bbox=nowhere",  # a 400
    "/api/v1/trees/999999/",  # a JSON 404
    "/api/v1/docs/",
    "/api/v1/schema/",
    "/no-such-page/",  # an HTML 404
]


def assert_security_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no other origin
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"


@pytest.mark.parametrize("url", URLS)
def test_every_response_carries_the_security_headers(client, url):
    assert_security_headers(client.get(url))


@pytest.mark.parametrize("url", URLS)
def test_every_header_is_a_plain_str(client, url):
    """PEP 3333: a WSGI server (wsgiref, gunicorn) rejects a header name or value of any other
    type, a str subclass such as an enum member included; Django's test client does not."""
    for name, value in client.get(url).items():
        assert type(name) is str, name
        assert type(value) is str, (name, value)


def test_a_cached_api_response_carries_them_too(client):
    client.get("/api/v1/species/")
    cached = client.get("/api/v1/species/")
    assert cached["X-Cache"] == "HIT"
    assert_security_headers(cached)


def test_a_throttled_response_carries_them_too(client, settings):
    settings.API_THROTTLE_RATE = "1/day"
    client.get("/api/v1/species/")
    throttled = client.get("/api/v1/species/")
    assert throttled.status_code == 429
    assert_security_headers(throttled)

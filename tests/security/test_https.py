"""HTTPS protections, switched by the environment, on real responses of the production server.

These pages touch no table, so the servers only need the test database to exist.
"""

import pytest
import requests

from tests.security.server import database_env, gunicorn

KEY = "https-test-" + "k" * 60


@pytest.fixture(scope="module")
def behind_tls(django_db_setup, static_root):
    """The production settings behind a TLS-terminating proxy, as README "Production" says."""
    env = database_env(
        SECRET_KEY=KEY,
        STATIC_ROOT=static_root,
        HTTPS_ONLY="true",
        TRUST_X_FORWARDED_PROTO="true",
        ALLOWED_HOSTS="127.0.0.1",
    )
    with gunicorn(env) as server:
        yield server


@pytest.fixture(scope="module")
def plain_http(django_db_setup, static_root):
    with gunicorn(database_env(SECRET_KEY=KEY, STATIC_ROOT=static_root)) as server:
        yield server


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, allow_redirects=False, timeout=10)


def test_behind_tls_http_is_redirected_to_https(behind_tls):
    response = get(f"{behind_tls.url}/admin/login/")
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{behind_tls.url[7:]}/admin/login/"


def test_behind_tls_pages_carry_hsts_and_secure_cookies(behind_tls):
    response = get(f"{behind_tls.url}/admin/login/", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    hsts = response.headers["Strict-Transport-Security"]
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    [csrf_cookie] = [cookie for cookie in response.cookies if cookie.name == "csrftoken"]
    assert csrf_cookie.secure


def test_behind_tls_probes_answer_over_plain_http(behind_tls):
    # Container healthchecks speak plain HTTP to the container itself.
    assert get(f"{behind_tls.url}/healthz").status_code == 200


def test_without_https_only_nothing_is_forced(plain_http):
    response = get(f"{plain_http.url}/admin/login/")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    [csrf_cookie] = [cookie for cookie in response.cookies if cookie.name == "csrftoken"]
    assert not csrf_cookie.secure


def test_forwarded_proto_is_ignored_unless_trusted(django_db_setup, static_root):
    env = database_env(
        SECRET_KEY=KEY, STATIC_ROOT=static_root, HTTPS_ONLY="true", ALLOWED_HOSTS="127.0.0.1"
    )
    with gunicorn(env) as server:
        response = get(f"{server.url}/admin/login/", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 301  # a client's claim to be on HTTPS is not believed

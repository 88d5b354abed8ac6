"""Requests are bounded: body, query string, page size, and (in gunicorn) line and headers.

Hostile values in query parameters are 400s before any SQL runs; tests/api/test_filters.py
covers each parameter's own validation (SQL in typed parameters, NUL bytes, long values).
"""

import json
import socket

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import TreeFactory
from tests.security.server import database_env, gunicorn
from trees.models import Tree

TREES = "/api/v1/trees/"


@pytest.mark.django_db
def test_page_size_is_capped_at_the_maximum(client):
    Tree.objects.bulk_create(
        TreeFactory.build(tree_id=tree_id, species=None) for tree_id in range(1, 1003)
    )
    full = client.get(TREES, {"page_size": settings.API_MAX_PAGE_SIZE})
    assert full.status_code == 200
    assert len(full.json()["results"]) == settings.API_MAX_PAGE_SIZE == 1000
    over = client.get(TREES, {"page_size": settings.API_MAX_PAGE_SIZE + 1})
    assert over.status_code == 400
    assert over.json()["errors"]["page_size"] == ["Must be a whole number from 1 to 1000."]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"page_size": "9" * 30},
        {"dbh_min": "9" * 30},
        {"species_id": "9" * 30},
        {"radius": "1" + "0" * 400},
        {"near": "40.7" + "0" * 300 + ",-73.9"},
        {"borough": "Queens' OR '1'='1"},
        {"zipcode": "1; DROP TABLE trees_tree"},
    ],
)
def test_a_hostile_value_is_a_400_before_any_sql(client, query):
    client.get(TREES)  # the connection is then open: connecting runs SQL of its own
    # An invalid request skips the response cache, so not even the data version is read.
    with CaptureQueriesContext(connection) as queries:
        response = client.get(TREES, query)
    assert response.status_code == 400
    assert [q["sql"] for q in queries] == []


@pytest.mark.django_db
def test_a_query_string_with_too_many_parameters_is_a_400(client):
    query = "&".join(
        f"p{number}=1" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)
    )
    assert client.get(f"{TREES}?{query}").status_code == 400


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_400(client):
    body = "username=" + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = client.post("/admin/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def raw_request(url: str, request: bytes) -> bytes:
    """Send bytes as they are (no client library would send these) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


@pytest.fixture(scope="module")
def server(django_db_setup, static_root):
    with gunicorn(database_env(SECRET_KEY="limits-" + "k" * 60, STATIC_ROOT=static_root)) as s:
        yield s


def test_gunicorn_answers_a_normal_request(server):
    answer = raw_request(server.url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_gunicorn_refuses_an_overlong_request_line(server):
    path = b"/api/v1/trees/?species=" + b"a" * 9000
    answer = raw_request(server.url, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"Request Line is too large" in answer


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /api/v1/trees/?" + b"&".join([b"borough=Queens"] * 10000), 414),
        (b"GET /api/v1/trees/\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(120)), 431),
        (b"GET /api/v1/trees/\r\nX-Filler: " + b"a" * 9000, 431),
        (b"GET /api/v1/\x00trees/", 400),
    ],
)
def test_gunicorn_answers_its_own_errors_in_the_api_json_shape(server, request_head, status):
    path, _, headers = request_head.partition(b"\r\n")
    head = path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (headers + b"\r\n" if headers else b"")
    answer = raw_request(server.url, head + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    header_block, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in header_block
    assert json.loads(body)["status"] == status
    assert b"Queens" not in body
    assert b"Filler" not in body


def test_gunicorn_refuses_too_many_headers(server):
    headers = b"".join(b"X-Filler-%d: 1\r\n" % number for number in range(120))
    answer = raw_request(
        server.url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_gunicorn_refuses_an_overlong_header(server):
    header = b"X-Filler: " + b"a" * 9000 + b"\r\n"
    answer = raw_request(
        server.url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 431 ")

"""The schema view through gunicorn with several threads: requests that arrive together each get
the whole schema (trees.api.schema.SchemaView)."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.security.server import database_env, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 8


def test_schema_requests_arriving_together_all_get_the_same_schema():
    env = database_env(
        SECRET_KEY="schema-" + "k" * 60,
        GUNICORN_THREADS=str(CLIENTS),
        CACHE_KEY_PREFIX=f"schema-{uuid.uuid4().hex}",
    )
    start = threading.Barrier(CLIENTS)

    def fetch(url: str) -> requests.Response:
        start.wait(timeout=30)
        return requests.get(url, timeout=60)

    with gunicorn(env) as server:
        urls = [f"{server.url}/api/v1/schema/?format=json"] * CLIENTS
        with ThreadPoolExecutor(CLIENTS) as pool:
            responses = list(pool.map(fetch, urls))
        again = requests.get(urls[0], timeout=60)

    assert [response.status_code for response in responses] == [200] * CLIENTS, server.logs()
    assert {response.content for response in responses} == {again.content}
    assert "/api/v1/trees/" in again.json()["paths"]

"""Fixtures shared by every test. Postgres and Redis are real; only Socrata is faked."""

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import override_settings

from tests.fakes.soda import FakeSodaServer
from tests.redis_server import MISSING, REDIS_SERVER, PrivateRedis


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings():
    """Give this test session its own cache namespace and plain static files.

    Tests use their own Redis database (15) under a key prefix of their own: they never
    touch a developer's cached responses or a concurrent run's, and clearing a test's keys
    (a SCAN) does not have to walk whatever a benchmark left in database 0. Plain static
    storage lets templates render without the manifest that only `collectstatic` writes.
    """
    from django.conf import settings

    location = urlsplit(settings.CACHES["default"]["LOCATION"])._replace(path="/15").geturl()
    caches = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": location,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(CACHES=caches, STORAGES=storages):
        yield


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache namespace (only this session's keys go).

    The API's in-process copy of recent responses goes too: every test's database starts
    again at data version 1, so keys from one test would name another test's data. So does
    any Redis outage the circuit breaker remembers: some tests make one.
    """
    from trees import breaker
    from trees.api.caching import recent

    breaker.redis.reset()
    cache.delete_pattern("*")
    recent.clear()
    yield
    breaker.redis.reset()
    cache.delete_pattern("*")
    recent.clear()


@pytest.fixture
def private_redis(tmp_path, settings) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, which the cache uses; the test may pause or stop it."""
    if REDIS_SERVER is None:
        pytest.fail(MISSING)
    server = PrivateRedis(tmp_path / "redis").start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    yield server
    server.stop()


@pytest.fixture
def soda_server_factory() -> Iterator[Callable[..., FakeSodaServer]]:
    """Start fake SODA servers (options as FakeSodaServer's); all stop after the test."""
    started: list[FakeSodaServer] = []

    def start(**options) -> FakeSodaServer:
        server = FakeSodaServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def soda_server(request: pytest.FixtureRequest, soda_server_factory) -> FakeSodaServer:
    """A fake SODA server on 127.0.0.1 with 2,500 generated rows of `uvpi-gqnh`.

    Other options through indirect parametrization:
    `@pytest.mark.parametrize("soda_server", [{"rows": 100, "app_token": "t"}], indirect=True)`
    """
    options = {"rows": 2500, **getattr(request, "param", {})}
    return soda_server_factory(**options)

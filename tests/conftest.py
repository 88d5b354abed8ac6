"""Fixtures shared by every test. Postgres and Redis are real; only Socrata is faked."""

import uuid

import pytest
from django.core.cache import cache
from django.test import override_settings


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings():
    """Give this test session its own cache namespace and plain static files.

    The key prefix keeps a test run from touching a developer's cached responses (or a
    concurrent run's), and plain static storage lets templates render without the
    manifest that only `collectstatic` writes.
    """
    from django.conf import settings

    caches = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
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
    again at data version 1, so keys from one test would name another test's data.
    """
    from trees.api.caching import recent

    cache.delete_pattern("*")
    recent.clear()
    yield
    cache.delete_pattern("*")
    recent.clear()

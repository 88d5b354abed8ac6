import pytest
from django.core.cache import cache
from django.db import transaction

from trees import cache as data_cache
from trees.models import DataVersion


@pytest.fixture
def version_row(db):
    row, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
    return row


def test_version_is_read_from_postgres_when_redis_has_none(version_row):
    DataVersion.objects.filter(pk=version_row.pk).update(version=41)
    assert data_cache.data_version().number == 41
    assert cache.get(data_cache.DATA_VERSION_KEY).startswith("41:")


def test_version_comes_from_redis_once_cached(version_row, django_assert_num_queries):
    data_cache.data_version()
    with django_assert_num_queries(0):
        assert data_cache.data_version().number == version_row.version


@pytest.mark.django_db(transaction=True)
def test_bump_publishes_only_after_commit():
    before = data_cache.data_version().number
    with transaction.atomic():
        data_cache.bump_data_version()
        # Other processes still see the old rows, so Redis keeps the old number.
        assert data_cache.Version.parse(cache.get(data_cache.DATA_VERSION_KEY)).number == before
    assert data_cache.data_version().number > before


@pytest.mark.django_db(transaction=True)
def test_rolled_back_bump_changes_nothing():
    before = data_cache.data_version().number

    def failing_sync():
        with transaction.atomic():
            data_cache.bump_data_version()
            raise RuntimeError("the sync failed")

    with pytest.raises(RuntimeError):
        failing_sync()
    assert data_cache.data_version().number == before
    assert DataVersion.objects.get().version == before


def test_malformed_cached_version_falls_back_to_postgres(version_row):
    cache.set(data_cache.DATA_VERSION_KEY, "garbage", timeout=None)
    assert data_cache.data_version().number == version_row.version


def test_response_key_carries_the_version_and_ignores_parameter_order():
    common = {"url": "http://x/api/v1/trees/", "path": "/api/v1/trees/", "fmt": "json"}
    key = data_cache.response_key(version=7, query=[("a", "1"), ("b", "2")], **common)
    assert key.startswith("api:v7:/api/v1/trees/:")
    assert key == data_cache.response_key(version=7, query=[("b", "2"), ("a", "1")], **common)
    assert key != data_cache.response_key(version=8, query=[("a", "1"), ("b", "2")], **common)


@pytest.mark.parametrize(
    "change",
    [
        {"query": [("a", "1"), ("b", "3")]},
        {"fmt": "geojson"},
        {"url": "https://x/api/v1/trees/"},
        {"url": "http://y/api/v1/trees/"},
    ],
)
def test_response_key_differs_for_a_different_request(change):
    request = {
        "version": 7,
        "url": "http://x/api/v1/trees/",
        "path": "/api/v1/trees/",
        "query": [("a", "1"), ("b", "2")],
        "fmt": "json",
    }
    assert data_cache.response_key(**request) != data_cache.response_key(**{**request, **change})


def test_response_key_length_is_bounded():
    key = data_cache.response_key(
        version=1, url="http://x/", path="/", query=[("species", "x" * 10_000)], fmt="json"
    )
    assert len(key) < 100

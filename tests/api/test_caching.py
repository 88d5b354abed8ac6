"""The response cache: hits skip the database, a data change is seen at once, 304s, outages."""

import logging

import pytest
from django.core.cache import cache
from django.db import transaction

from tests.api.conftest import listed_ids
from trees.api import caching
from trees.cache import bump_data_version, data_version
from trees.models import Tree

TREES = "/api/v1/trees/"
URLS = [
    TREES,
    f"{TREES}?borough=Bronx&page_size=1",
    f"{TREES}101/",
    f"{TREES}101/?format=geojson",
    "/api/v1/species/",
    "/api/v1/stats/?status=Alive",
]


@pytest.mark.parametrize("url", URLS)
def test_repeated_request_makes_no_database_query(
    api_client, census, url, django_assert_num_queries
):
    first = api_client.get(url)
    assert first.status_code == 200
    assert first["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        second = api_client.get(url)
    assert second.status_code == 200
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]


def test_parameter_order_does_not_matter(api_client, census, django_assert_num_queries):
    api_client.get(f"{TREES}?borough=Bronx&health=Good")
    with django_assert_num_queries(0):
        assert listed_ids(api_client.get(f"{TREES}?health=Good&borough=Bronx")) == [106]


def test_formats_are_cached_apart(api_client, census):
    as_json = api_client.get(f"{TREES}101/")
    as_geojson = api_client.get(f"{TREES}101/", HTTP_ACCEPT="application/geo+json")
    assert as_geojson["Content-Type"] == "application/geo+json"
    assert as_geojson.json()["type"] == "Feature"
    assert as_json.json()["tree_id"] == 101
    assert as_json["ETag"] != as_geojson["ETag"]


def test_errors_are_not_cached(api_client, census):
    first = api_client.get(TREES, {"borough": "Narnia"})
    second = api_client.get(TREES, {"borough": "Narnia"})
    assert first.status_code == second.status_code == 400
    assert "X-Cache" not in second


def change_like_a_sync(tree_id: int, **fields) -> None:
    """What sync_trees does with each batch: change rows and bump the version, one transaction."""
    with transaction.atomic():
        Tree.objects.filter(tree_id=tree_id).update(**fields)
        bump_data_version()


@pytest.mark.django_db(transaction=True)  # the new version is published on commit
@pytest.mark.parametrize(
    ("url", "read"),
    [
        (f"{TREES}101/", lambda body: body["health"]),
        (f"{TREES}?borough=Queens", lambda body: body["results"][0]["health"]),
        ("/api/v1/stats/?borough=Queens", lambda body: body["by_health"][2]["count"]),
    ],
)
def test_data_change_is_served_on_the_next_request(api_client, census, url, read):
    before = api_client.get(url).json()
    assert api_client.get(url)["X-Cache"] == "HIT"

    change_like_a_sync(101, health="Poor")

    after = api_client.get(url)
    assert after["X-Cache"] == "MISS"
    assert read(before) != read(after.json())
    assert read(after.json()) in ("Poor", 1)


@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_keeps_the_cache(api_client, census):
    api_client.get(f"{TREES}101/")

    def failing_sync():
        with transaction.atomic():
            change_like_a_sync(101, health="Poor")
            raise RuntimeError("the sync failed")

    with pytest.raises(RuntimeError):
        failing_sync()
    response = api_client.get(f"{TREES}101/")
    assert response["X-Cache"] == "HIT"
    assert response.json()["health"] == "Good"


def test_matching_if_none_match_is_a_304(api_client, census, django_assert_num_queries):
    etag = api_client.get(TREES)["ETag"]
    with django_assert_num_queries(0):
        response = api_client.get(TREES, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_304_needs_no_cached_body(api_client, census, django_assert_num_queries):
    etag = api_client.get(TREES)["ETag"]
    cache.delete_pattern("api:*")  # Redis lost the body, not the version
    with django_assert_num_queries(0):
        assert api_client.get(TREES, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_stale_etag_gets_the_full_response(api_client, census, django_capture_on_commit_callbacks):
    etag = api_client.get(TREES)["ETag"]
    with django_capture_on_commit_callbacks(execute=True):
        bump_data_version()
    response = api_client.get(TREES, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response["ETag"] != etag


def test_etag_of_another_query_does_not_match(api_client, census):
    etag = api_client.get(TREES, {"borough": "Bronx"})["ETag"]
    assert api_client.get(TREES, HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_if_modified_since_last_modified_is_a_304(api_client, census):
    last_modified = api_client.get(TREES)["Last-Modified"]
    assert api_client.get(TREES, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304


def test_if_modified_since_before_the_last_change_gets_the_response(api_client, census):
    api_client.get(TREES)
    old_date = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert api_client.get(TREES, HTTP_IF_MODIFIED_SINCE=old_date).status_code == 200


def test_cache_headers(api_client, census, settings):
    settings.API_CACHE_MAX_AGE = 30
    response = api_client.get(TREES)
    assert response["Cache-Control"] == "public, max-age=30, must-revalidate"
    assert response["Vary"] == "Accept"
    assert response["ETag"].startswith('"')
    assert response["Last-Modified"].endswith("GMT")


@pytest.fixture
def redis_unreachable(settings):
    """Point the cache at a closed port: every cache call fails, as when Redis is down."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }


@pytest.mark.parametrize("url", URLS)
def test_redis_unreachable_still_answers_from_postgres(
    api_client, census, redis_unreachable, caplog, url
):
    with caplog.at_level(logging.WARNING):
        first = api_client.get(url)
        second = api_client.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second["X-Cache"] == "MISS"
    assert any(record.name.startswith("trees.") for record in caplog.records)


def test_redis_unreachable_gives_the_right_data(api_client, census, redis_unreachable):
    assert listed_ids(api_client.get(TREES, {"borough": "Bronx"})) == [104, 106]


def test_a_wrong_version_guess_is_never_served(api_client, census, monkeypatch):
    # The lookup reads the body under the version this process saw last, in the same round
    # trip as the real version; a body under any other version must not be sent.
    current = data_version().number
    url = f"{TREES}101/"
    stale_key = caching._response_key(api_client.get(url).wsgi_request, current - 1)
    cache.set(stale_key, ("application/json", b'{"stale": true}'))
    monkeypatch.setattr(caching, "_last_version", current - 1)

    response = api_client.get(url)

    assert response.json()["tree_id"] == 101
    assert caching._last_version == current


def test_recent_responses_stay_within_their_budget():
    recent = caching.RecentResponses(max_bytes=100)
    for n in range(10):
        recent.put(f"k{n}", ("application/json", b"x" * 20))
    assert recent.size <= 100
    assert recent.get("k9") is not None
    assert recent.get("k0") is None  # the oldest went first
    recent.put("big", ("application/json", b"x" * 60))  # over a quarter of the budget
    assert recent.get("big") is None


@pytest.mark.django_db(transaction=True)
def test_a_remembered_response_is_not_served_after_a_change(api_client, census):
    # The in-process copy is keyed by data version as Redis is: a change moves past it.
    api_client.get(f"{TREES}101/")
    assert api_client.get(f"{TREES}101/")["X-Cache"] == "HIT"
    change_like_a_sync(101, health="Poor")
    assert api_client.get(f"{TREES}101/").json()["health"] == "Poor"

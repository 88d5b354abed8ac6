"""The response cache: hits skip the database, a data change is seen at once, 304s, outages.

"No database query" below means none through Django: the data version's primary-key read,
on every cacheable request, goes straight to psycopg (trees.cache.data_version), and the
tests here that pause, stop or flush a private Redis check that it is what decides.
"""

import logging
from datetime import timedelta

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django.utils.http import parse_http_date
from django_redis import get_redis_connection

from tests.api.conftest import listed_ids
from trees import breaker
from trees.api import caching
from trees.cache import bump_data_version
from trees.models import DataVersion, Tree

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
    cache.delete_pattern("api:*")  # Redis lost the body
    caching.recent.clear()
    with django_assert_num_queries(0):
        assert api_client.get(TREES, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_stale_etag_gets_the_full_response(api_client, census):
    etag = api_client.get(TREES)["ETag"]
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


def test_if_modified_since_a_change_in_the_same_second_gets_the_response(api_client, census):
    # Last-Modified has whole seconds: a change within the second it names must not make a
    # client's If-Modified-Since (of the data before that change) a 304.
    last_modified = api_client.get(TREES)["Last-Modified"]
    bump_data_version()
    response = api_client.get(TREES, HTTP_IF_MODIFIED_SINCE=last_modified)
    assert response.status_code == 200
    assert parse_http_date(response["Last-Modified"]) > parse_http_date(last_modified)


def test_last_modified_moves_on_even_if_the_clock_went_back(api_client, census):
    # A sync on a host whose clock is behind the previous one's (or a clock set back).
    DataVersion.objects.update(changed_at=timezone.now() + timedelta(hours=1))
    last_modified = api_client.get(TREES)["Last-Modified"]
    bump_data_version()
    assert api_client.get(TREES, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 200


@pytest.mark.parametrize(
    "condition",
    [
        {"HTTP_IF_MODIFIED_SINCE": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {"HTTP_IF_NONE_MATCH": "*"},
    ],
)
@pytest.mark.parametrize(
    "url", [f"{TREES}999/", f"{TREES}?cursor=abc", f"{TREES}101/?borough=Bronx"]
)
def test_a_condition_does_not_make_a_missing_resource_a_304(api_client, census, condition, url):
    assert api_client.get(url, **condition).status_code == 404


def test_if_modified_since_is_a_304_when_redis_lost_the_body(api_client, census):
    last_modified = api_client.get(TREES)["Last-Modified"]
    cache.delete_pattern("api:*")
    caching.recent.clear()
    response = api_client.get(TREES, HTTP_IF_MODIFIED_SINCE=last_modified)
    assert response.status_code == 304
    assert response.content == b""


def test_cache_headers(api_client, census, settings):
    settings.API_CACHE_MAX_AGE = 30
    response = api_client.get(TREES)
    assert response["Cache-Control"] == "public, max-age=30, must-revalidate"
    # Accept picks the format, Accept-Encoding gzip, Origin whether CORS headers are sent.
    vary = {name.strip().lower() for name in response["Vary"].split(",")}
    assert vary == {"accept", "accept-encoding", "origin"}
    assert response["ETag"].startswith('"')
    assert response["Last-Modified"].endswith("GMT")


@pytest.fixture
def redis_unreachable(settings):
    """Point the cache at a closed port: every cache call fails, as when Redis is down."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }


@pytest.mark.parametrize("url", URLS)
def test_redis_unreachable_still_answers(api_client, census, redis_unreachable, caplog, url):
    with caplog.at_level(logging.WARNING):
        first = api_client.get(url)
        second = api_client.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first["X-Cache"] == "MISS"
    # The second from this process's memory: its key, like Redis's, carries the version.
    assert second["X-Cache"] == "HIT"
    assert [record.name for record in caplog.records] == ["trees.breaker"]


def test_redis_unreachable_gives_the_right_data(api_client, census, redis_unreachable):
    assert listed_ids(api_client.get(TREES, {"borough": "Bronx"})) == [104, 106]


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


# --- Finding 6: whatever Redis does while a sync commits, the next request sees the commit ---

STALE_AFTER_A_SYNC = [
    (f"{TREES}101/", lambda body: body["health"]),
    (f"{TREES}?borough=Queens", lambda body: body["results"][0]["health"]),
    ("/api/v1/stats/?borough=Queens", lambda body: body["by_health"]),
]


def warm(api_client, url: str):
    first = api_client.get(url)
    assert first.status_code == 200
    assert api_client.get(url)["X-Cache"] == "HIT"
    return first


def assert_new_data(response, before, read) -> None:
    assert response.status_code == 200
    assert response["ETag"] != before["ETag"]
    assert read(response.json()) != read(before.json())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("url", "read"), STALE_AFTER_A_SYNC)
def test_a_change_committed_while_redis_is_paused_is_served_once_it_resumes(
    api_client, census, private_redis, url, read
):
    before = warm(api_client, url)
    # The sync runs in a process of its own (sync_trees), which has no connection to Redis
    # open yet: whatever it would send Redis at the commit gets no further than the
    # handshake of a new connection.
    get_redis_connection("default").connection_pool.disconnect()
    private_redis.pause()
    change_like_a_sync(101, health="Poor")
    private_redis.resume()
    assert_new_data(api_client.get(url), before, read)
    assert_new_data(api_client.get(url), before, read)  # and stays new


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("url", "read"), STALE_AFTER_A_SYNC)
def test_a_change_committed_while_redis_is_down_is_served_after_its_restart(
    api_client, census, private_redis, url, read
):
    before = warm(api_client, url)
    private_redis.stop()
    change_like_a_sync(101, health="Poor")
    private_redis.start()  # with everything it held before: its append-only file
    assert_new_data(api_client.get(url), before, read)


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_redis_was_flushed_is_served(api_client, census, private_redis):
    url, read = STALE_AFTER_A_SYNC[0]
    before = warm(api_client, url)
    private_redis.flush()
    change_like_a_sync(101, health="Poor")
    assert_new_data(api_client.get(url), before, read)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("url", "read"), STALE_AFTER_A_SYNC)
def test_a_change_committed_by_another_process_is_served_on_the_next_request(
    api_client, census, url, read
):
    # A sync in another process: the change and the version bump, in one committed
    # transaction of its own, with nothing telling Redis or this process about it.
    before = warm(api_client, url)
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
    ) as elsewhere:
        elsewhere.execute("UPDATE trees_tree SET health = 'Poor' WHERE tree_id = 101")
        elsewhere.execute("UPDATE trees_dataversion SET version = version + 1, changed_at = now()")
    assert_new_data(api_client.get(url), before, read)


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_a_change_committed_while_redis_was_paused(census, private_redis):
    import requests

    from tests.security.server import database_env, gunicorn

    url = "/api/v1/stats/"
    with gunicorn(database_env(SECRET_KEY="cache-" + "k" * 60, REDIS_URL=private_redis.url)) as s:
        before = requests.get(s.url + url, timeout=10)
        assert requests.get(s.url + url, timeout=10).headers["X-Cache"] == "HIT"
        private_redis.pause()
        with transaction.atomic():
            Tree.objects.filter(tree_id=101).delete()
            bump_data_version()
        private_redis.resume()
        after = requests.get(s.url + url, timeout=10)
    assert (before.json()["total"], after.json()["total"]) == (6, 5)
    assert after.headers["ETag"] != before.headers["ETag"]


# --- Finding 9: a paused Redis costs one short timeout, then is skipped for a while ---------


def test_while_redis_is_paused_only_the_first_request_waits_for_it(
    api_client, census, private_redis, caplog, settings
):
    settings.REDIS_BREAKER_SECONDS = 600  # longer than the test, however slow the machine
    warm(api_client, TREES)
    caplog.clear()
    private_redis.pause()
    with caplog.at_level(logging.INFO):
        responses = [api_client.get(url) for url in URLS for _ in range(5)]
    assert {response.status_code for response in responses} == {200}
    assert breaker.redis.failures == 1  # the others skipped Redis: the breaker was open
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.exc_info) for r in warnings] == [("trees.breaker", None)]
    assert "Redis is unavailable" in warnings[0].getMessage()


def test_cache_and_throttle_resume_when_redis_comes_back(
    api_client, census, private_redis, settings
):
    settings.REDIS_BREAKER_SECONDS = 0  # try Redis again on the very next request
    settings.API_THROTTLE_RATE = "3/day"
    private_redis.pause()
    assert api_client.get(TREES)["X-Cache"] == "MISS"
    assert breaker.redis.failures >= 1
    private_redis.resume()
    assert [api_client.get(f"{TREES}102/").status_code for _ in range(4)] == [200, 200, 200, 429]
    stored = private_redis.client().keys("*api:v*")
    assert len(stored) == 1  # tree 102's response (tree list's was never stored)
    assert breaker.redis.down_since is None


# --- Finding 8: one entry per meaning --------------------------------------------------------


def test_repeated_values_in_either_order_share_one_entry_and_mean_any_of_them(
    api_client, census, django_assert_num_queries
):
    first = api_client.get(f"{TREES}?borough=Bronx&borough=Queens")
    assert listed_ids(first) == [101, 104, 106]
    with django_assert_num_queries(0):
        second = api_client.get(f"{TREES}?borough=Queens&borough=Bronx&borough=Queens")
    assert second["X-Cache"] == "HIT"
    assert listed_ids(second) == [101, 104, 106]
    assert second["ETag"] == first["ETag"]


@pytest.mark.parametrize(
    ("first_accept", "query", "accept", "expected"),
    [
        ("application/geo+json", "format=geojson", "*/*", "format=geojson"),
        ("*/*", "format=json", "application/geo+json", "format=json"),
    ],
)
def test_a_next_link_keeps_the_format_its_request_asked_for(
    api_client, census, first_accept, query, accept, expected
):
    # The same format asked for by Accept and by ?format=: the same body but for its links,
    # which must keep ?format= for a client whose Accept header would choose the other one.
    api_client.get(f"{TREES}?page_size=1", HTTP_ACCEPT=first_accept)
    response = api_client.get(f"{TREES}?page_size=1&{query}", HTTP_ACCEPT=accept)
    assert expected in response.json()["next"]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("borough=Bronx", "borough=Bronx&borough=Queens"),
        ("dbh_min=3", "dbh_max=3"),
        ("species=red+maple", "species=pin+oak"),
        ("page_size=2", "page_size=3"),
    ],
)
def test_requests_that_mean_different_things_get_different_entries(api_client, census, one, other):
    first = api_client.get(f"{TREES}?{one}")
    second = api_client.get(f"{TREES}?{other}")
    assert second["X-Cache"] == "MISS"
    assert first["ETag"] != second["ETag"]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("radius=500&near=40.7,-73.9", "near=40.7,-73.9&radius=500.0"),
        ("page_size=5", "page_size=05"),
        ("health=Good&health=Poor", "health=Poor&health=Good&health=Good"),
    ],
)
def test_requests_that_mean_the_same_share_an_entry(api_client, census, one, other):
    first = api_client.get(f"{TREES}?{one}")
    second = api_client.get(f"{TREES}?{other}")
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content

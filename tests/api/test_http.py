"""HTTP as clients expect it on every API answer: gzip (stored compressed), OPTIONS, Allow,
Content-Length, RateLimit-*, throttle scopes, CORS. What depends on the real server (HEAD's
body, gzip and CORS on the wire) is tested through gunicorn below as well."""

import gzip
import http.client
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache import cache

from tests.security.server import database_env, gunicorn
from trees.api import caching
from trees.api.caching import accepts_gzip
from trees.cache import bump_data_version

TREES = "/api/v1/trees/"
GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
# Every kind of API endpoint: root, list, detail, cached and uncached, schema, docs.
ENDPOINTS = [
    "/api/v1/",
    TREES,
    f"{TREES}101/",
    "/api/v1/species/",
    "/api/v1/stats/",
    "/api/v1/groups/?by=borough",
    "/api/v1/schema/",
    "/api/v1/docs/",
]


@pytest.fixture
def big_page(census):
    """A trees/ page large enough to be compressed (all six trees, ~2.5 KB)."""
    return f"{TREES}?page_size=10"


# --- gzip -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("GZIP", True),
        ("", False),
        ("identity", False),
        ("br", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # named and refused: the star does not bring it back
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(accept_encoding, expected):
    assert accepts_gzip(accept_encoding) is expected


def test_a_large_response_is_gzipped_when_the_client_accepts_it(api_client, big_page):
    plain = api_client.get(big_page)
    zipped = api_client.get(big_page, **GZIP)
    assert "Content-Encoding" not in plain
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content) / 2
    assert int(zipped["Content-Length"]) == len(zipped.content)


@pytest.mark.parametrize("accept_encoding", [None, "identity", "gzip;q=0", "br"])
def test_a_client_that_does_not_accept_gzip_gets_identity(api_client, big_page, accept_encoding):
    api_client.get(big_page, **GZIP)  # the stored entry holds both variants
    headers = {} if accept_encoding is None else {"HTTP_ACCEPT_ENCODING": accept_encoding}
    response = api_client.get(big_page, **headers)
    assert response["X-Cache"] == "HIT"
    assert "Content-Encoding" not in response
    assert response.json()["results"][0]["tree_id"] == 101


def test_a_hit_sends_the_stored_gzip_without_compressing_again(api_client, big_page, monkeypatch):
    miss = api_client.get(big_page, **GZIP)
    caching.recent.clear()  # from Redis this time, not this process's memory
    calls = []
    real_compress = gzip.compress
    monkeypatch.setattr(
        gzip, "compress", lambda *a, **k: calls.append(1) or real_compress(*a, **k)
    )
    hit = api_client.get(big_page, **GZIP)
    assert (miss["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    assert hit["Content-Encoding"] == "gzip"
    assert calls == []


def test_redis_holds_the_gzipped_variant(api_client, big_page):
    api_client.get(big_page)  # the identity client's miss stores the gzipped copy too
    (key,) = cache.keys("api:*")
    entry = caching._decode(cache.client.get_client().get(cache.make_key(key)))
    assert gzip.decompress(entry.gzipped) == entry.body
    assert entry.content_type == "application/json"


def test_a_small_response_is_sent_as_it_is(api_client, census):
    response = api_client.get(TREES, {"borough": "Narnia"}, **GZIP)  # a short 400
    assert response.status_code == 400
    assert "Content-Encoding" not in response
    assert response.json()["errors"]["borough"]


def test_each_encoding_has_its_own_etag(api_client, big_page):
    plain = api_client.get(big_page)
    zipped = api_client.get(big_page, **GZIP)
    assert plain["ETag"] != zipped["ETag"]
    assert {name.strip() for name in zipped["Vary"].split(",")} >= {"Accept", "Accept-Encoding"}


@pytest.mark.parametrize("etag_of", ["gzip", "identity"])
def test_either_etag_gets_a_304_whatever_the_encoding_asked(api_client, big_page, etag_of):
    etag = api_client.get(big_page, **(GZIP if etag_of == "gzip" else {}))["ETag"]
    for headers in ({}, GZIP):
        response = api_client.get(big_page, HTTP_IF_NONE_MATCH=etag, **headers)
        assert response.status_code == 304
        assert response["ETag"] == etag
        assert response.content == b""


def test_a_weak_or_listed_etag_matches_too(api_client, big_page):
    etag = api_client.get(big_page, **GZIP)["ETag"]
    for sent in (f"W/{etag}", f'"other", {etag}'):
        assert api_client.get(big_page, HTTP_IF_NONE_MATCH=sent, **GZIP).status_code == 304


def test_a_gzip_etag_is_a_304_with_no_stored_body(api_client, big_page):
    etag = api_client.get(big_page, **GZIP)["ETag"]
    cache.delete_pattern("api:*")
    caching.recent.clear()
    assert api_client.get(big_page, HTTP_IF_NONE_MATCH=etag, **GZIP).status_code == 304


def test_a_gzip_etag_of_older_data_gets_the_new_response(api_client, big_page):
    etag = api_client.get(big_page, **GZIP)["ETag"]
    bump_data_version()
    response = api_client.get(big_page, HTTP_IF_NONE_MATCH=etag, **GZIP)
    assert response.status_code == 200
    assert response["ETag"] != etag


def test_an_uncached_view_is_gzipped_too(api_client, db):
    plain = api_client.get("/api/v1/schema/")
    zipped = api_client.get("/api/v1/schema/", **GZIP)
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert "Accept-Encoding" in zipped["Vary"]


# --- OPTIONS, Allow, Content-Length --------------------------------------------------------------


@pytest.mark.parametrize("url", ENDPOINTS)
def test_options_names_the_methods_and_sends_no_body(api_client, census, url):
    response = api_client.options(url)
    assert response.status_code == 200
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert response["Content-Length"] == "0"
    assert response.content == b""


@pytest.mark.parametrize("url", ENDPOINTS)
def test_drf_answers_name_the_same_methods(api_client, census, url):
    assert api_client.get(url)["Allow"] == "GET, HEAD, OPTIONS"


def test_options_on_no_endpoint_is_a_404(api_client, db):
    assert api_client.options("/api/v1/nothing-here/").status_code == 404


def assert_allow_and_length(response) -> None:
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert int(response["Content-Length"]) == len(response.content)


def test_a_hit_carries_allow_and_content_length(api_client, big_page):
    api_client.get(big_page)
    hit = api_client.get(big_page)
    assert hit["X-Cache"] == "HIT"
    assert_allow_and_length(hit)


def test_a_400_carries_allow_and_content_length(api_client, census):
    response = api_client.get(TREES, {"borough": "Narnia"})
    assert response.status_code == 400
    assert_allow_and_length(response)


def test_a_429_carries_allow_and_content_length(api_client, census, settings):
    settings.API_THROTTLE_RATE = "1/day"
    api_client.get(TREES)
    response = api_client.get(TREES)
    assert response.status_code == 429
    assert_allow_and_length(response)


def test_a_304_says_the_length_a_200_would_have(api_client, big_page):
    first = api_client.get(big_page, **GZIP)
    response = api_client.get(big_page, HTTP_IF_NONE_MATCH=first["ETag"], **GZIP)
    assert response.status_code == 304
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert response["Content-Length"] == str(len(first.content))


# --- RateLimit-* and scopes ----------------------------------------------------------------------


def quota(response) -> tuple[int, int, int]:
    return tuple(int(response[f"RateLimit-{name}"]) for name in ("Limit", "Remaining", "Reset"))


def test_ratelimit_headers_count_down_on_hits_misses_and_429s(api_client, census, settings):
    settings.API_THROTTLE_RATE = "3/day"
    responses = [api_client.get(TREES) for _ in range(4)]
    assert [r.get("X-Cache") for r in responses] == ["MISS", "HIT", "HIT", None]
    assert [quota(r)[:2] for r in responses] == [(3, 2), (3, 1), (3, 0), (3, 0)]
    assert all(1 <= quota(r)[2] <= 86400 for r in responses)
    assert int(responses[-1]["Retry-After"]) == quota(responses[-1])[2]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_sends_ratelimit_headers(api_client, census, settings, url):
    settings.API_THROTTLE_RATE = "100/hour"
    limit, remaining, reset = quota(api_client.get(url))
    assert (limit, remaining) == (100, 99)
    assert 1 <= reset <= 3600


def test_a_304_and_an_options_send_them_too(api_client, census, settings):
    settings.API_THROTTLE_RATE = "10/hour"
    etag = api_client.get(TREES)["ETag"]
    assert quota(api_client.get(TREES, HTTP_IF_NONE_MATCH=etag))[:2] == (10, 8)
    assert quota(api_client.options(TREES))[:2] == (10, 7)


def test_without_redis_there_are_no_ratelimit_headers(api_client, census, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    response = api_client.get(TREES)
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response


SCOPED = pytest.mark.urls("tests.api.scoped_urls")
EXPORT_LIKE = "/api/v1/test-export/"


@pytest.fixture
def scoped_rates(settings):
    settings.API_THROTTLE_RATE = "3/day"
    settings.API_EXPORT_THROTTLE_RATE = "2/day"


@SCOPED
def test_a_view_in_the_export_scope_has_the_export_rate(api_client, db, scoped_rates):
    responses = [api_client.get(EXPORT_LIKE) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [quota(r)[:2] for r in responses] == [(2, 1), (2, 0), (2, 0)]


@SCOPED
def test_the_export_scope_is_counted_apart_from_the_rest(api_client, census, scoped_rates):
    for _ in range(2):
        api_client.get(EXPORT_LIKE)
    assert api_client.get(EXPORT_LIKE).status_code == 429
    assert [api_client.get(TREES).status_code for _ in range(4)] == [200, 200, 200, 429]


@SCOPED
def test_routes_are_resolved_to_their_scope(db):
    assert caching.route(EXPORT_LIKE, "tests.api.scoped_urls").scope == "export"
    assert caching.route(TREES, "tests.api.scoped_urls").scope == "default"
    assert caching.route("/api/v1/schema/", "tests.api.scoped_urls").found
    assert not caching.route("/api/v1/none/", "tests.api.scoped_urls").found


# --- CORS (django-cors-headers) ---------------------------------------------------------------

ORIGIN = "https://maps.example.org"


def test_a_cross_origin_get_is_allowed_and_can_read_the_validators(api_client, census):
    response = api_client.get(TREES, HTTP_ORIGIN=ORIGIN)
    assert response["Access-Control-Allow-Origin"] == "*"
    exposed = {name.strip() for name in response["Access-Control-Expose-Headers"].split(",")}
    assert exposed >= {
        "ETag",
        "Last-Modified",
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Content-Disposition",
    }
    assert "Access-Control-Allow-Credentials" not in response


def test_a_hit_a_304_and_a_429_carry_cors_headers(api_client, census, settings):
    settings.API_THROTTLE_RATE = "3/day"
    etag = api_client.get(TREES, HTTP_ORIGIN=ORIGIN)["ETag"]
    hit = api_client.get(TREES, HTTP_ORIGIN=ORIGIN)
    not_modified = api_client.get(TREES, HTTP_ORIGIN=ORIGIN, HTTP_IF_NONE_MATCH=etag)
    throttled = api_client.get(TREES, HTTP_ORIGIN=ORIGIN)
    assert (hit["X-Cache"], not_modified.status_code, throttled.status_code) == ("HIT", 304, 429)
    for response in (hit, not_modified, throttled):
        assert response["Access-Control-Allow-Origin"] == "*"


def preflight(api_client, url=TREES, method="GET", headers="if-none-match"):
    return api_client.options(
        url,
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def test_a_preflight_allows_the_conditional_headers(api_client, census):
    response = preflight(api_client, headers="if-none-match, if-modified-since")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {name.strip() for name in response["Access-Control-Allow-Headers"].split(",")}
    assert {"if-none-match", "if-modified-since"} <= allowed
    methods = {name.strip() for name in response["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "OPTIONS"}
    assert int(response["Access-Control-Max-Age"]) > 0


def test_only_the_configured_origins_when_a_list_is_given(api_client, census, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    assert api_client.get(TREES, HTTP_ORIGIN=ORIGIN)["Access-Control-Allow-Origin"] == ORIGIN
    other = api_client.get(TREES, HTTP_ORIGIN="https://elsewhere.example")
    assert "Access-Control-Allow-Origin" not in other


def test_no_cors_outside_the_api(client, db):
    response = client.get("/admin/login/", HTTP_ORIGIN=ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


# --- Through gunicorn --------------------------------------------------------------------------


def server_env(**extra: str) -> dict[str, str]:
    """A server whose throttle counts start at zero: gunicorn's Redis is not the one the
    tests' cache fixture empties, so counters of other tests' servers would last their window."""
    return database_env(
        SECRET_KEY="http-" + "k" * 60,
        API_THROTTLE_RATE="1000/minute",
        CACHE_KEY_PREFIX=f"test-http-{uuid.uuid4().hex}",
        **extra,
    )


def raw_request(url: str, method: str, path: str, headers: dict[str, str]):
    """One request over http.client: the body as sent (no decoding), and the headers."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_gunicorn_head_sends_no_body_on_a_miss_or_a_hit(census):
    paths = [f"{TREES}?page_size=10", "/api/v1/schema/", "/api/v1/"]
    with gunicorn(server_env()) as server:
        results = []
        for path in paths:
            for encoding in ("identity", "gzip"):
                headers = {"Accept-Encoding": encoding}
                head_miss = raw_request(server.url, "HEAD", path, headers)
                get = raw_request(server.url, "GET", path, headers)
                head_hit = raw_request(server.url, "HEAD", path, headers)
                results.append((path, encoding, head_miss, get, head_hit))
    assert "no-body response" not in server.logs()
    for path, encoding, head_miss, get, head_hit in results:
        assert get[0] == 200, (path, get)
        for head in (head_miss, head_hit):
            assert head[0] == 200
            assert head[2] == b""
            # The headers of the GET: its length, its encoding.
            assert head[1]["Content-Length"] == str(len(get[2])), (path, encoding)
            assert head[1].get("Content-Encoding") == get[1].get("Content-Encoding")


@pytest.mark.django_db(transaction=True)
def test_gunicorn_sends_gzip_on_a_miss_and_a_hit(census):
    path = f"{TREES}?page_size=10"
    with gunicorn(server_env()) as server:
        plain = raw_request(server.url, "GET", path, {"Accept-Encoding": "identity"})
        miss = raw_request(server.url, "GET", f"{TREES}?page_size=9", {"Accept-Encoding": "gzip"})
        hit = raw_request(server.url, "GET", path, {"Accept-Encoding": "gzip"})
        options = raw_request(server.url, "OPTIONS", path, {})
    assert plain[1].get("Content-Encoding") is None
    for status, headers, body in (miss, hit):
        assert status == 200
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Content-Length"] == str(len(body))
        assert int(headers["RateLimit-Limit"]) == 1000
        assert headers["Allow"] == "GET, HEAD, OPTIONS"
    assert (miss[1]["X-Cache"], hit[1]["X-Cache"]) == ("MISS", "HIT")
    assert gzip.decompress(hit[2]) == plain[2]
    assert (options[0], options[1]["Allow"], options[1]["Content-Length"], options[2]) == (
        200,
        "GET, HEAD, OPTIONS",
        "0",
        b"",
    )


@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_cors_for_the_origins_configured(census):
    allowed = "https://maps.example.org"
    with gunicorn(server_env(CORS_ALLOWED_ORIGINS=allowed)) as server:
        preflight_answer = requests.options(
            server.url + TREES,
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "if-none-match",
            },
            timeout=10,
        )
        first = requests.get(server.url + TREES, headers={"Origin": allowed}, timeout=10)
        hit = requests.get(server.url + TREES, headers={"Origin": allowed}, timeout=10)
        refused = requests.get(
            server.url + TREES, headers={"Origin": "https://elsewhere.example"}, timeout=10
        )
    assert preflight_answer.status_code == 200
    assert preflight_answer.headers["Access-Control-Allow-Origin"] == allowed
    assert "if-none-match" in preflight_answer.headers["Access-Control-Allow-Headers"]
    assert hit.headers["X-Cache"] == "HIT"
    for response in (first, hit):
        assert response.headers["Access-Control-Allow-Origin"] == allowed
        assert "RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.django_db(transaction=True)
def test_gunicorn_streams_no_body_for_head_and_counts_the_export_scope(db):
    env = server_env(ROOT_URLCONF="tests.api.scoped_urls", API_EXPORT_THROTTLE_RATE="3/hour")
    with gunicorn(env) as server:
        head = raw_request(server.url, "HEAD", "/api/v1/test-export.csv", {})
        get = raw_request(
            server.url, "GET", "/api/v1/test-export.csv", {"Accept-Encoding": "gzip"}
        )
        third = raw_request(server.url, "GET", "/api/v1/test-export.csv", {})
        fourth = raw_request(server.url, "GET", "/api/v1/test-export.csv", {})
        general = raw_request(server.url, "GET", "/api/v1/", {})
    assert "no-body response" not in server.logs()
    assert (head[0], head[2]) == (200, b"")
    assert head[1]["Content-Disposition"] == 'attachment; filename="trees.csv"'
    # The stream as the view made it: not compressed or measured here (an export does both).
    assert get[2].startswith(b"0,tree\n")
    assert get[2].endswith(b"9999,tree\n")
    assert "Content-Encoding" not in get[1]
    assert [r[1]["RateLimit-Remaining"] for r in (head, get, third)] == ["2", "1", "0"]
    assert (fourth[0], fourth[1]["RateLimit-Limit"]) == (429, "3")
    assert (general[0], general[1]["RateLimit-Limit"]) == (200, "1000")

"""Throttling per client address: 429 with Retry-After, cached or not; never 500."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from trees.api.throttling import Rate, client_address, parse_rate

TREES = "/api/v1/trees/"


@pytest.fixture
def three_a_day(settings):
    # A day-long window: the count cannot roll over to a new window during a test.
    settings.API_THROTTLE_RATE = "3/day"


def test_client_over_the_rate_gets_429_with_retry_after(api_client, census, three_a_day):
    statuses = [api_client.get(TREES).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api_client.get(TREES)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 86400
    body = response.json()
    assert body["status"] == 429
    assert "throttled" in body["detail"]


def test_cache_hits_count_too(api_client, census, three_a_day):
    api_client.get(TREES)
    assert api_client.get(TREES)["X-Cache"] == "HIT"
    assert api_client.get(TREES)["X-Cache"] == "HIT"
    assert api_client.get(TREES).status_code == 429


def test_every_endpoint_shares_the_clients_allowance(api_client, census, three_a_day):
    urls = ["/api/v1/trees/101/", "/api/v1/species/", "/api/v1/stats/", "/api/v1/schema/"]
    assert [api_client.get(url).status_code for url in urls] == [200, 200, 200, 429]


def test_clients_are_counted_apart(api_client, census, three_a_day):
    for _ in range(3):
        api_client.get(TREES, REMOTE_ADDR="192.0.2.1")
    assert api_client.get(TREES, REMOTE_ADDR="192.0.2.1").status_code == 429
    assert api_client.get(TREES, REMOTE_ADDR="192.0.2.2").status_code == 200


def test_forged_forwarded_for_does_not_escape_the_limit(api_client, census, three_a_day):
    statuses = [
        api_client.get(TREES, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(4)
    ]
    assert statuses[-1] == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    api_client, census, three_a_day, settings
):
    settings.API_TRUSTED_PROXIES = 1
    for _ in range(3):
        api_client.get(TREES, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert api_client.get(TREES, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    assert api_client.get(TREES, HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 200


def test_writes_are_throttled_too(api_client, census, three_a_day):
    assert [api_client.post(TREES).status_code for _ in range(4)] == [405, 405, 405, 429]


@pytest.mark.parametrize(
    ("proxies", "forwarded", "client"),
    [
        (0, "198.51.100.7", "192.0.2.1"),  # no trusted proxy: the header is ignored
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "10.9.9.9, 198.51.100.7", "198.51.100.7"),  # the forged part is ignored
        (2, "198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "198.51.100.7", "198.51.100.7"),  # fewer addresses than proxies
    ],
)
def test_client_address(rf, settings, proxies, forwarded, client):
    settings.API_TRUSTED_PROXIES = proxies
    request = rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == client


def test_redis_unreachable_means_no_throttling(api_client, census, three_a_day, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    assert {api_client.get(TREES).status_code for _ in range(5)} == {200}


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("120/minute", Rate(120, 60)),
        ("5/s", Rate(5, 1)),
        ("1000/hour", Rate(1000, 3600)),
        ("3/day", Rate(3, 86400)),
    ],
)
def test_rate_is_parsed(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["120", "many/minute", "0/minute", "10/fortnight", "10/"])
def test_bad_rate_is_a_configuration_error(text):
    with pytest.raises(ImproperlyConfigured, match="API_THROTTLE_RATE"):
        parse_rate(text)

"""GeoJSON: a FeatureCollection for lists, a Feature for one tree, [longitude, latitude]."""

import pytest

from tests.api.conftest import assert_bad_parameter

TREES = "/api/v1/trees/"


def test_list_is_a_feature_collection(api_client, census):
    response = api_client.get(TREES, {"format": "geojson", "page_size": 2})
    assert response["Content-Type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert [feature["id"] for feature in body["features"]] == [101, 102]
    assert body["previous"] is None
    assert "cursor=" in body["next"]
    assert "format=geojson" in body["next"]


def test_features_are_points_in_longitude_latitude_order(api_client, census):
    body = api_client.get(TREES, {"format": "geojson", "borough": "Bronx"}).json()
    feature = body["features"][1]
    assert feature["type"] == "Feature"
    assert feature["id"] == 106
    assert feature["geometry"] == {"type": "Point", "coordinates": [-73.88, 40.85]}
    assert feature["properties"]["tree_id"] == 106
    assert feature["properties"]["species"]["common_name"] == "red maple"
    assert "latitude" not in feature["properties"]
    assert "longitude" not in feature["properties"]


def test_detail_is_a_feature(api_client, census):
    body = api_client.get(f"{TREES}106/", {"format": "geojson"}).json()
    assert body["type"] == "Feature"
    assert body["geometry"]["coordinates"] == [-73.88, 40.85]
    assert body["properties"]["bbl"] == 4022210001


@pytest.mark.parametrize(
    "accept",
    [
        "application/geo+json",
        "application/geo+json, application/json;q=0.5",
        "text/html, application/geo+json;q=0.9",
    ],
)
def test_accept_header_selects_geojson(api_client, census, accept):
    response = api_client.get(TREES, HTTP_ACCEPT=accept)
    assert response["Content-Type"] == "application/geo+json"
    assert response.json()["type"] == "FeatureCollection"


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "*/*",
        "text/html",
        "application/geo+json;q=0",
        "application/geo+json;q=0.0",
        "application/geo+json; Q=0.000",
    ],
)
def test_other_accept_headers_get_json(api_client, census, accept):
    response = api_client.get(TREES, HTTP_ACCEPT=accept)
    assert response["Content-Type"] == "application/json"
    assert "results" in response.json()


def test_format_parameter_wins_over_accept(api_client, census):
    response = api_client.get(TREES, {"format": "json"}, HTTP_ACCEPT="application/geo+json")
    assert response["Content-Type"] == "application/json"


def test_errors_stay_json_when_geojson_was_asked_for(api_client, census):
    response = api_client.get(TREES, {"format": "geojson", "bbox": "nonsense"})
    assert_bad_parameter(response, "bbox")
    missing = api_client.get(f"{TREES}999/", HTTP_ACCEPT="application/geo+json")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"


def test_species_and_stats_offer_only_json(api_client, census):
    assert_bad_parameter(api_client.get("/api/v1/species/", {"format": "geojson"}), "format")
    response = api_client.get("/api/v1/stats/", HTTP_ACCEPT="application/geo+json")
    assert response["Content-Type"] == "application/json"

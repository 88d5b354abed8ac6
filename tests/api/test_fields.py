"""`fields=`: the keys of each tree on trees/ and trees/{id}/ (the exports' columns are in
test_export.py), in the documented order, part of the cache key, and in the schema."""

import pytest

from tests.api.conftest import assert_bad_parameter
from tests.api.schema import assert_matches_schema, openapi_schema
from trees.api.fields import ITEM_FIELDS
from trees.api.serializers import LIST_FIELDS
from trees.export import EXPORT_COLUMNS

TREES = "/api/v1/trees/"

pytestmark = pytest.mark.django_db


def test_list_items_carry_only_the_fields_asked_for_in_the_documented_order(api_client, census):
    response = api_client.get(f"{TREES}?fields=health,tree_id&borough=Queens")
    assert response.json()["results"] == [{"tree_id": 101, "health": "Good"}]


def test_a_list_may_ask_for_stored_columns_its_items_do_not_usually_show(api_client, census):
    response = api_client.get(f"{TREES}?fields=tree_id,nta_name,root_stone,species&nta=QN17")
    (item,) = response.json()["results"]
    tree = census["maple_queens"]
    assert item == {
        "tree_id": 101,
        "species": {
            "id": tree.species_id,
            "latin_name": "Acer rubrum",
            "common_name": "red maple",
        },
        "root_stone": tree.root_stone,
        "nta_name": tree.nta_name,
    }


def test_without_fields_a_list_item_is_unchanged(api_client, census):
    (item, *_) = api_client.get(TREES).json()["results"]
    assert list(item) == LIST_FIELDS


def test_distance_is_a_field_with_near(api_client, census):
    response = api_client.get(f"{TREES}?fields=tree_id,distance&near=40.7,-73.9&radius=150")
    results = response.json()["results"]
    assert [set(item) for item in results] == [{"tree_id", "distance"}] * 2
    assert results[0]["distance"] == pytest.approx(0, abs=0.01)


def test_detail_carries_only_the_fields_asked_for(api_client, census):
    response = api_client.get(f"{TREES}102/?fields=zip_city,tree_dbh")
    assert response.json() == {"tree_dbh": 12, "zip_city": census["oak_brooklyn"].zip_city}


def test_geojson_keeps_id_and_geometry_and_fields_select_the_properties(api_client, census):
    page = api_client.get(f"{TREES}?format=geojson&fields=health&borough=Brooklyn").json()
    (feature,) = page["features"]
    assert feature["id"] == 102
    assert feature["geometry"]["coordinates"] == [-73.9, census["oak_brooklyn"].latitude]
    assert feature["properties"] == {"health": "Fair"}
    detail = api_client.get(f"{TREES}102/?format=geojson&fields=tree_id").json()
    assert (detail["id"], detail["properties"]) == (102, {"tree_id": 102})


@pytest.mark.parametrize("url", [TREES, f"{TREES}101/"])
def test_an_unknown_field_is_a_400_listing_the_valid_ones(api_client, census, url):
    body = assert_bad_parameter(api_client.get(f"{url}?fields=tree_id,colour"), "fields")
    assert "'colour'" in body["errors"]["fields"][0]
    assert ", ".join(ITEM_FIELDS) in body["errors"]["fields"][0]


def test_fields_given_twice_is_a_400(api_client, census):
    assert_bad_parameter(api_client.get(f"{TREES}?fields=tree_id&fields=health"), "fields")


def test_fields_enter_the_cache_key(api_client, census):
    first = api_client.get(f"{TREES}?fields=tree_id")
    other = api_client.get(f"{TREES}?fields=health")
    assert other["X-Cache"] == "MISS"
    assert list(other.json()["results"][0]) == ["health"]
    assert first["ETag"] != other["ETag"]


def test_the_same_fields_in_another_order_share_the_cached_response(api_client, census):
    first = api_client.get(f"{TREES}?fields=tree_id,health")
    again = api_client.get(f"{TREES}?fields=health,tree_id,health")
    assert again["X-Cache"] == "HIT"
    assert again["ETag"] == first["ETag"]


def parameters(path: str) -> dict[str, dict]:
    operation = openapi_schema()["paths"][path]["get"]
    return {parameter["name"]: parameter for parameter in operation.get("parameters", [])}


def test_the_schema_documents_fields_with_each_endpoints_names():
    for path in (TREES, "/api/v1/trees/{tree_id}/"):
        pattern = parameters(path)["fields"]["schema"]["pattern"]
        assert all(name in pattern for name in ITEM_FIELDS)
    for path in ("/api/v1/trees/export.csv", "/api/v1/trees/export.geojson"):
        schema = parameters(path)["fields"]["schema"]
        assert "species_latin_name" in schema["pattern"]
        assert all(name in schema["pattern"] for name in EXPORT_COLUMNS)


@pytest.mark.parametrize("path", ["/api/v1/stats/", "/api/v1/groups/", "/api/v1/species/"])
def test_the_other_endpoints_take_no_fields(path):
    assert "fields" not in parameters(path)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (f"{TREES}?fields=tree_id,species", TREES),
        (f"{TREES}?fields=health&format=geojson", TREES),
        (f"{TREES}101/?fields=block_id", "/api/v1/trees/{tree_id}/"),
    ],
)
def test_responses_with_fields_match_the_schema(api_client, census, url, path):
    assert_matches_schema(api_client.get(url), path)

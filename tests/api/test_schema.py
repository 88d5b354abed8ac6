"""The OpenAPI schema validates, documents every parameter, and describes real responses."""

import pytest
from django.core.management import call_command

from tests.api.schema import assert_matches_schema, openapi_schema

TREES = "/api/v1/trees/"


def test_schema_validates_without_warnings(tmp_path):
    # Raises (SchemaGenerationError / SystemExit) on any warning or validation error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert (tmp_path / "s.yml").read_text().startswith("openapi: 3")


def documented_parameters(path: str) -> dict[str, dict]:
    operation = openapi_schema()["paths"][path]["get"]
    return {parameter["name"]: parameter for parameter in operation["parameters"]}


def test_every_trees_parameter_is_documented():
    parameters = documented_parameters(TREES)
    assert set(parameters) == {
        "borough", "zipcode", "nta", "species", "species_id", "health", "status", "steward",
        "curb_loc", "sidewalk", "problem", "dbh_min", "dbh_max", "bbox", "near", "radius",
        "ordering", "page_size", "cursor", "format", "fields",
    }  # fmt: skip
    assert all(parameter.get("description") for parameter in parameters.values())
    assert parameters["page_size"]["schema"]["maximum"] == 1000
    assert parameters["radius"]["schema"]["maximum"] == 5000
    assert parameters["ordering"]["schema"]["enum"] == ["tree_id", "-tree_id", "distance"]
    assert set(parameters["format"]["schema"]["enum"]) == {"json", "geojson"}
    assert set(parameters["borough"]["schema"]["items"]["enum"]) >= {"Queens", "Staten Island"}


REPEATABLE = {
    "borough", "health", "status", "steward", "curb_loc", "sidewalk", "zipcode", "nta",
    "species", "species_id",
}  # fmt: skip


@pytest.mark.parametrize("path", [TREES, "/api/v1/stats/"])
def test_categorical_filters_are_documented_as_repeatable_arrays(path):
    for name, parameter in documented_parameters(path).items():
        if name in REPEATABLE:
            assert parameter["schema"]["type"] == "array", name
            assert (parameter["style"], parameter["explode"]) == ("form", True), name
        else:  # given once: one value, not an array
            assert parameter["schema"]["type"] != "array", name
            assert parameter.get("explode") is not True, name


def test_repeatable_item_schemas_keep_their_rules():
    parameters = documented_parameters(TREES)
    assert parameters["zipcode"]["schema"]["items"]["pattern"] == "^[0-9]{1,5}$"
    assert parameters["species_id"]["schema"]["items"]["type"] == "integer"
    assert parameters["species"]["schema"]["items"]["maxLength"] == 200


def test_stats_take_the_trees_filters_and_no_paging():
    stats = set(documented_parameters("/api/v1/stats/"))
    trees = set(documented_parameters(TREES))
    assert stats == trees - {"ordering", "page_size", "cursor", "format", "fields"}


def test_groups_take_the_trees_filters_and_by():
    groups = documented_parameters("/api/v1/groups/")
    trees = set(documented_parameters(TREES))
    assert set(groups) == trees - {"ordering", "page_size", "cursor", "format", "fields"} | {"by"}
    by = groups["by"]
    assert by["required"] is True
    assert by["schema"]["type"] == "string"
    assert "council_district" in by["description"]


def test_groups_response_is_a_typed_model():
    components = openapi_schema()["components"]["schemas"]
    body = components["Groups"]
    assert set(body["required"]) == {"by", "total", "groups"}
    group = components["Group"]
    assert set(group["required"]) == {"count", "dbh_mean", "dbh_median", "poor_share"}
    assert {"borough", "species", "council_district"} <= set(group["properties"])


def test_species_take_the_tree_filters_too():
    species = set(documented_parameters("/api/v1/species/"))
    assert species == set(documented_parameters("/api/v1/stats/")) | {"search", "ordering"}


def test_every_operation_documents_its_errors():
    for path, operations in openapi_schema()["paths"].items():
        if not path.startswith(
            ("/api/v1/trees", "/api/v1/species", "/api/v1/stats", "/api/v1/groups")
        ):
            continue
        responses = operations["get"]["responses"]
        assert {"200", "304", "400", "429"} <= set(responses), path
        assert "application/json" in responses["400"]["content"], path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (f"{TREES}?page_size=3", TREES),
        (f"{TREES}?format=geojson&page_size=3", TREES),
        (f"{TREES}?near=40.7,-73.9&radius=700&ordering=distance", TREES),
        (f"{TREES}104/", "/api/v1/trees/{tree_id}/"),
        (f"{TREES}104/?format=geojson", "/api/v1/trees/{tree_id}/"),
        (f"{TREES}999/", "/api/v1/trees/{tree_id}/"),
        (f"{TREES}?bbox=1,2", TREES),
        ("/api/v1/species/", "/api/v1/species/"),
        ("/api/v1/species/?ordering=nope", "/api/v1/species/"),
        ("/api/v1/stats/", "/api/v1/stats/"),
        ("/api/v1/stats/?species=nothing", "/api/v1/stats/"),
        ("/api/v1/species/?borough=Bronx", "/api/v1/species/"),
        ("/api/v1/", "/api/v1/"),
    ],
)
def test_response_matches_the_schema(api_client, census, url, path):
    assert_matches_schema(api_client.get(url), path)


def test_throttled_response_matches_the_schema(api_client, census, settings):
    settings.API_THROTTLE_RATE = "1/day"
    api_client.get(TREES)
    response = api_client.get(TREES)
    assert response.status_code == 429
    assert_matches_schema(response, TREES)


def test_species_detail_matches_the_schema(api_client, census):
    url = f"/api/v1/species/{census['species']['oak'].id}/"
    assert_matches_schema(api_client.get(url), "/api/v1/species/{id}/")

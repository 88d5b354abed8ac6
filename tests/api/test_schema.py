"""The OpenAPI schema validates, documents every parameter, and describes real responses."""

import pytest
from django.core.management import call_command

from tests.api.conftest import assert_bad_parameter
from tests.api.schema import assert_matches_schema, openapi_schema
from trees.api.schema import postprocess

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
        "address", "guards", "user_type", "created_min", "created_max", "community_board",
        "council_district", "census_tract", "species_search",
        "root_stone", "root_grate", "root_other", "trunk_wire", "trnk_light", "trnk_other",
        "brch_light", "brch_shoe", "brch_other",
    }  # fmt: skip
    assert all(parameter.get("description") for parameter in parameters.values())
    assert parameters["page_size"]["schema"]["maximum"] == 1000
    assert parameters["radius"]["schema"]["maximum"] == 5000
    assert parameters["ordering"]["schema"]["enum"][:3] == ["tree_id", "-tree_id", "tree_dbh"]
    assert set(parameters["format"]["schema"]["enum"]) == {"json", "geojson"}
    assert "`Staten Island`" in parameters["borough"]["description"]


REPEATABLE = {
    "borough", "health", "status", "steward", "curb_loc", "sidewalk", "zipcode", "nta",
    "species", "species_id", "guards", "user_type", "community_board", "council_district",
    "census_tract",
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
    assert stats == trees - {"ordering", "page_size", "cursor", "fields"}


def test_groups_take_the_trees_filters_and_by():
    groups = documented_parameters("/api/v1/groups/")
    trees = set(documented_parameters(TREES))
    assert set(groups) == trees - {"ordering", "page_size", "cursor", "fields"} | {"by"}
    by = groups["by"]
    assert by["required"] is True
    assert by["schema"]["type"] == "string"
    assert "council_district" in by["description"]


def test_groups_response_is_a_typed_model():
    components = openapi_schema()["components"]["schemas"]
    body = components["TreeGroups"]
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


# --- What generated clients need (openapi-python-client; tests/api/test_generated_client.py) --

API_PATHS = ("/api/v1/trees", "/api/v1/species", "/api/v1/stats", "/api/v1/groups")


def operations() -> list[tuple[str, dict]]:
    return [
        (path, operation)
        for path, item in openapi_schema()["paths"].items()
        for operation in item.values()
    ]


def test_no_operation_requires_authentication():
    # `security: [{}]` made openapi-python-client demand an AuthenticatedClient everywhere.
    assert "security" not in openapi_schema()
    assert [path for path, operation in operations() if "security" in operation] == []


@pytest.mark.parametrize(
    ("path", "name"), [("/api/v1/species/{id}/", "id"), ("/api/v1/trees/{tree_id}/", "tree_id")]
)
def test_path_ids_are_integers(path, name):
    parameter = documented_parameters(path)[name]
    assert parameter["in"] == "path"
    assert parameter["schema"]["type"] == "integer"
    assert parameter["schema"]["minimum"] >= -(2**63)
    assert parameter["schema"]["maximum"] <= 2**63 - 1


@pytest.mark.parametrize(
    ("path", "json_body", "geojson_body"),
    [
        (TREES, "PaginatedTreeList", "TreeFeatureCollection"),
        ("/api/v1/trees/{tree_id}/", "TreeDetail", "TreeDetailFeature"),
    ],
)
def test_the_first_media_type_parses_geojson_too(path, json_body, geojson_body):
    # A generator parses a 200 with its first media type's schema, whatever was asked for:
    # that schema must accept the GeoJSON body as well, or `format=geojson` crashes the client.
    content = openapi_schema()["paths"][path]["get"]["responses"]["200"]["content"]
    first, *others = content.items()
    assert first[0] == "application/json"
    refs = [schema["$ref"].rsplit("/", 1)[1] for schema in first[1]["schema"]["oneOf"]]
    # GeoJSON first: its required `type` tells it apart; a JSON tree may require no key.
    assert refs == [geojson_body, json_body]
    assert dict(others)["application/geo+json"]["schema"]["$ref"].endswith(geojson_body)


def header_names(path: str, status: int) -> set[str]:
    return set(openapi_schema()["paths"][path]["get"]["responses"][str(status)].get("headers", {}))


@pytest.mark.parametrize("path", [p for p in openapi_schema()["paths"] if p.startswith(API_PATHS)])
def test_validators_are_documented_on_200_and_304(path):
    validators = {"ETag", "Last-Modified", "Cache-Control", "Vary"}
    assert validators <= header_names(path, 200)
    assert validators <= header_names(path, 304)
    assert not validators & header_names(path, 400)
    headers = openapi_schema()["components"]["headers"]
    assert all(headers[name]["required"] for name in validators)


@pytest.mark.parametrize("path", [p for p in openapi_schema()["paths"] if p.startswith(API_PATHS)])
def test_retry_after_is_documented_on_429_and_503(path):
    responses = openapi_schema()["paths"][path]["get"]["responses"]
    assert "application/json" in responses["503"]["content"]
    assert "Retry-After" in header_names(path, 429)
    assert "Retry-After" in header_names(path, 503)
    assert "Retry-After" not in header_names(path, 200)


def test_rate_limit_headers_are_documented_on_every_answer():
    rate_limit = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    for path, operation in operations():
        for status, response in operation["responses"].items():
            assert rate_limit <= set(response["headers"]), (path, status)
    headers = openapi_schema()["components"]["headers"]
    # Absent while Redis is unavailable: optional, but integers when sent.
    assert not any(headers[name].get("required") for name in rate_limit)
    assert all(headers[name]["schema"]["type"] == "integer" for name in rate_limit)


def test_documented_headers_are_sent(api_client, census):
    response = api_client.get(f"{TREES}?page_size=2")
    assert response.status_code == 200
    required = {
        name
        for name, header in openapi_schema()["components"]["headers"].items()
        if header.get("required")
    }
    assert {name for name in header_names(TREES, 200) if name in required} <= set(response.headers)
    revalidated = api_client.get(f"{TREES}?page_size=2", HTTP_IF_NONE_MATCH=response["ETag"])
    assert revalidated.status_code == 304
    assert {name for name in header_names(TREES, 304) if name in required} <= set(
        revalidated.headers
    )


def test_throttled_response_sends_its_documented_retry_after(api_client, census, settings):
    settings.API_THROTTLE_RATE = "1/day"
    api_client.get("/api/v1/stats/")
    response = api_client.get("/api/v1/stats/")
    assert response.status_code == 429
    assert "Retry-After" in header_names("/api/v1/stats/", 429)
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("path", "formats"),
    [
        (TREES, {"json", "geojson"}),
        ("/api/v1/trees/{tree_id}/", {"json", "geojson"}),
        ("/api/v1/species/", {"json"}),
        ("/api/v1/species/{id}/", {"json"}),
        ("/api/v1/stats/", {"json"}),
        ("/api/v1/groups/", {"json"}),
    ],
)
def test_every_format_is_documented(path, formats):
    assert set(documented_parameters(path)["format"]["schema"]["enum"]) == formats


@pytest.mark.parametrize("url", ["/api/v1/stats/", "/api/v1/species/", "/api/v1/groups/?by=nta"])
def test_json_only_endpoints_take_format_json_and_refuse_geojson(api_client, census, url):
    separator = "&" if "?" in url else "?"
    assert api_client.get(f"{url}{separator}format=json").status_code == 200
    assert_bad_parameter(api_client.get(f"{url}{separator}format=geojson"), "format")


def binary_response(media_type: str) -> dict:
    binary = {"type": "string", "format": "binary"}
    operation = {"responses": {"200": {"content": {media_type: {"schema": binary}}}}}
    processed = postprocess({"paths": {"/api/v1/x": {"get": operation}}})
    return processed["paths"]["/api/v1/x"]["get"]["responses"]["200"]["content"][media_type]


def test_a_text_body_is_a_string_not_a_file():
    # openapi-python-client reads text/* as response.text: a `binary` schema wrapped it in
    # BytesIO, a TypeError (the CSV export's, once merged).
    assert binary_response("text/csv")["schema"] == {"type": "string"}


def test_a_json_body_is_json_not_a_file():
    assert binary_response("application/geo+json")["schema"] == {"type": "object"}


def test_a_binary_body_stays_a_file():
    assert binary_response("application/octet-stream")["schema"]["format"] == "binary"

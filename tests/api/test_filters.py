"""Each filter of trees/ returns exactly the expected trees; each bad value is a 400 naming it."""

import base64

import pytest

from tests.api.conftest import CENTRE, assert_bad_parameter, listed_ids
from tests.factories import TreeFactory
from trees.models import Tree

TREES = "/api/v1/trees/"
LAT, LON = CENTRE


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [101, 102, 103, 104, 105, 106]),
        ({"borough": "Queens"}, [101]),
        ({"borough": "Bronx"}, [104, 106]),
        ({"borough": "Staten Island"}, [105]),
        ({"zipcode": "11209"}, [102]),
        ({"nta": "MN12"}, [103]),
        ({"species": "red maple"}, [101, 106]),
        ({"species": "ACER RUBRUM"}, [101, 106]),
        ({"species": "Quercus palustris"}, [102]),
        ({"species": "maple"}, []),  # whole names only; species/?search= finds parts
        ({"health": "Good"}, [101, 106]),
        ({"health": "Poor"}, [103]),
        ({"status": "Alive"}, [101, 102, 103, 106]),
        ({"status": "Dead"}, [104]),
        ({"status": "Stump"}, [105]),
        ({"steward": "1or2"}, [102]),
        ({"steward": "3or4"}, [106]),
        ({"curb_loc": "OffsetFromCurb"}, [103]),
        ({"sidewalk": "Damage"}, [102]),
        ({"problem": "stones"}, [102, 106]),
        ({"problem": "BranchLights"}, [102]),
        ({"dbh_min": "12"}, [102, 103, 106]),
        ({"dbh_max": "8"}, [101, 104, 105]),
        ({"dbh_min": "8", "dbh_max": "25"}, [102, 103, 104]),
        ({"borough": "Bronx", "health": "Good"}, [106]),
        ({"borough": "Bronx", "status": "Dead", "dbh_min": "9"}, []),
    ],
)
def test_filter_returns_exactly_the_matching_trees(api_client, census, query, expected):
    assert listed_ids(api_client.get(TREES, query)) == expected


def test_species_id_filter(api_client, census):
    maple = census["species"]["maple"]
    assert listed_ids(api_client.get(TREES, {"species_id": maple.id})) == [101, 106]


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        # Around the centre and 300 m north of it, but not 600 m north.
        (f"{LON - 0.001},{LAT - 0.001},{LON + 0.001},{LAT + 0.004}", [101, 102, 103]),
        # Corners are included: a box that is exactly one tree's point.
        (f"{LON},{LAT},{LON},{LAT}", [101]),
        # All of New York City.
        ("-74.3,40.4,-73.6,41.0", [101, 102, 103, 104, 105, 106]),
        # Somewhere else entirely.
        ("2.2,48.8,2.4,48.9", []),
    ],
)
def test_bbox_returns_the_trees_inside(api_client, census, bbox, expected):
    assert listed_ids(api_client.get(TREES, {"bbox": bbox})) == expected


@pytest.mark.parametrize(
    ("radius", "expected"),
    [
        ("99", [101]),
        ("101", [101, 102]),
        ("299", [101, 102]),
        ("301", [101, 102, 103]),
        ("601", [101, 102, 103, 104]),
        (None, [101, 102]),  # the default radius, 250 m
    ],
)
def test_near_returns_the_trees_within_the_radius(api_client, census, radius, expected):
    query = {"near": f"{LAT},{LON}"}
    if radius is not None:
        query["radius"] = radius
    assert listed_ids(api_client.get(TREES, query)) == expected


def test_near_reports_each_trees_distance(api_client, census):
    response = api_client.get(TREES, {"near": f"{LAT},{LON}", "radius": "601"})
    distances = {tree["tree_id"]: tree["distance"] for tree in response.json()["results"]}
    assert distances == pytest.approx({101: 0, 102: 100, 103: 300, 104: 600}, abs=0.01)


def test_distance_is_null_without_near(api_client, census):
    results = api_client.get(TREES).json()["results"]
    assert {tree["distance"] for tree in results} == {None}


def test_near_can_order_by_distance(api_client, db):
    for tree_id, metres in [(1, 300), (2, 0), (3, 200), (4, 100)]:
        TreeFactory(tree_id=tree_id, latitude=LAT + metres / 111_195.08, longitude=LON)
    response = api_client.get(TREES, {"near": f"{LAT},{LON}", "ordering": "distance"})
    assert listed_ids(response) == [2, 4, 3]  # 300 m is outside the default radius


def test_near_combines_with_other_filters(api_client, census):
    query = {"near": f"{LAT},{LON}", "radius": "601", "health": "Poor"}
    assert listed_ids(api_client.get(TREES, query)) == [103]


def encoded(cursor: str) -> str:
    return base64.b64encode(cursor.encode()).decode()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"borough": "Narnia"}, "borough"),
        ({"health": "Excellent"}, "health"),
        ({"status": "Sleeping"}, "status"),
        ({"steward": "2"}, "steward"),
        ({"curb_loc": "Roof"}, "curb_loc"),
        ({"sidewalk": "Cracked"}, "sidewalk"),
        ({"zipcode": "ABCDE"}, "zipcode"),
        ({"zipcode": "123456"}, "zipcode"),
        ({"nta": "QN1"}, "nta"),
        ({"species_id": "abc"}, "species_id"),
        ({"species_id": "0"}, "species_id"),
        ({"species_id": "1.5"}, "species_id"),
        ({"species_id": "99999999999999999999"}, "species_id"),
        ({"dbh_min": "-1"}, "dbh_min"),
        ({"dbh_min": "ten"}, "dbh_min"),
        ({"dbh_max": "40000"}, "dbh_max"),
        ({"bbox": "-74,40.6,-73.9"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "-200,40.6,-73.9,40.8"}, "bbox"),
        ({"bbox": "-74.0,-95,-73.9,40.8"}, "bbox"),
        ({"bbox": "nan,40.6,-73.9,40.8"}, "bbox"),
        ({"bbox": "-inf,40.6,-73.9,40.8"}, "bbox"),
        ({"bbox": "-1e999,40.6,-73.9,40.8"}, "bbox"),
        ({"near": "40.7"}, "near"),
        ({"near": "40.7,-73.9,12"}, "near"),
        ({"near": "91,-73.9"}, "near"),
        ({"near": "40.7,-181"}, "near"),
        ({"near": "north,west"}, "near"),
        ({"near": "40.7,-73.9", "radius": "0"}, "radius"),
        ({"near": "40.7,-73.9", "radius": "-5"}, "radius"),
        ({"near": "40.7,-73.9", "radius": "5001"}, "radius"),
        ({"near": "40.7,-73.9", "radius": "far"}, "radius"),
        ({"near": "40.7,-73.9", "radius": "nan"}, "radius"),
        ({"ordering": "dbh"}, "ordering"),
        ({"ordering": "height"}, "ordering"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"page_size": "1.5"}, "page_size"),
        ({"format": "xml"}, "format"),
        ({"borogh": "Queens"}, "borogh"),  # an unknown parameter: likely a typo
        ({"borough": ""}, "borough"),  # an empty value is no value, as the schema says
        ({"zipcode": ""}, "zipcode"),
        ({"species": ""}, "species"),
        ({"page_size": ""}, "page_size"),
        ({"format": ""}, "format"),
        ({"near": "4e1,-73.9"}, "near"),  # decimals only, as the schema's pattern says
        ({"bbox": "+74,40.6,-73.9,40.8"}, "bbox"),
        ({"near": "040.7,-73.9"}, "near"),
    ],
)
def test_invalid_parameter_is_a_400_naming_it(api_client, census, query, parameter):
    assert_bad_parameter(api_client.get(TREES, query), parameter)


@pytest.mark.parametrize(
    "query",
    [
        {"dbh_min": "20", "dbh_max": "10"},
        {"created_min": "2015-08-02", "created_max": "2015-08-01"},
        {"bbox": "-73.9,40.6,-74.0,40.8"},  # min_lon > max_lon
        {"bbox": "-74.0,40.8,-73.9,40.6"},  # min_lat > max_lat
    ],
)
def test_an_inverted_range_matches_no_tree(api_client, census, query):
    # Not a 400: the schema allows these values, and a range from 20 down to 10 is empty.
    assert listed_ids(api_client.get(TREES, query)) == []


@pytest.mark.parametrize(
    ("url", "extra", "empty"),
    [
        (TREES, {}, lambda body: body["results"] == []),
        ("/api/v1/stats/", {}, lambda body: body["total"] == 0),
        ("/api/v1/groups/", {"by": "borough"}, lambda body: body["groups"] == []),
        ("/api/v1/species/", {}, lambda body: body == []),
        ("/api/v1/trees/export.csv", {}, lambda body: body.count("\n") == 1),
    ],
)
def test_an_inverted_range_is_answered_without_a_query(
    api_client, census, django_assert_num_queries, url, extra, empty
):
    with django_assert_num_queries(0):
        response = api_client.get(url, {"dbh_min": "20", "dbh_max": "10", **extra})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode() if response.streaming else response.json()
    assert empty(body)


def test_radius_without_near_changes_nothing(api_client, census):
    assert listed_ids(api_client.get(TREES, {"radius": "100"})) == [101, 102, 103, 104, 105, 106]


def test_ordering_by_distance_without_near_is_tree_id_order(api_client, census):
    response = api_client.get(TREES, {"ordering": "distance", "page_size": "4"})
    assert listed_ids(response) == [101, 102, 103, 104]
    assert listed_ids(api_client.get(response.json()["next"])) == [105, 106]


@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "!!!",
        encoded("p=abc"),
        encoded("p=99999999999999999999"),
        encoded("o=-1"),
        "a\x00b",
        "7" * 5000,
    ],
)
def test_a_cursor_no_response_gave_is_a_404(api_client, census, cursor):
    response = api_client.get(TREES, {"cursor": cursor})
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "detail": "Invalid cursor: use the `next` or `previous` link of a response.",
    }


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("borough", "Queens' OR '1'='1"),
        ("zipcode", "1 OR 1=1"),
        ("nta", "QN17'; DROP TABLE trees_tree; --"),
        ("species_id", "1; DELETE FROM trees_tree"),
        ("dbh_min", "0) OR (1=1"),
        ("bbox", "-74,40,-73,41); DROP TABLE trees_tree; --"),
        ("ordering", "tree_id; DROP TABLE trees_tree"),
        ("page_size", "50 UNION SELECT 1"),
    ],
)
def test_injection_attempt_in_a_typed_parameter_is_a_400(api_client, census, parameter, value):
    assert_bad_parameter(api_client.get(TREES, {parameter: value}), parameter)
    assert Tree.objects.count() == 6


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("species", "red maple'; DROP TABLE trees_tree; --"),
        ("problem", "%' OR 1=1 --"),
        ("problem", "_"),  # LIKE wildcards are escaped: only literal underscores match
    ],
)
def test_injection_attempt_in_free_text_matches_nothing(api_client, census, parameter, value):
    assert listed_ids(api_client.get(TREES, {parameter: value})) == []
    assert Tree.objects.count() == 6


@pytest.mark.parametrize(
    "parameter",
    ["species", "problem", "zipcode", "nta", "bbox", "near", "borough", "ordering"],
)
def test_nul_byte_is_a_400(api_client, census, parameter):
    assert_bad_parameter(api_client.get(TREES, {parameter: "a\x00b"}), parameter)


@pytest.mark.parametrize("parameter", ["species", "problem", "bbox", "near"])
def test_very_long_value_is_a_400(api_client, census, parameter):
    assert_bad_parameter(api_client.get(TREES, {parameter: "7" * 5000}), parameter)


def test_every_bad_parameter_is_reported_at_once(api_client, census):
    body = assert_bad_parameter(api_client.get(TREES, {"borough": "x", "bbox": "y"}), "borough")
    assert set(body["errors"]) == {"borough", "bbox"}


# --- One meaning per query: repeated categorical values mean any of them (OR) ---------------


def query_string(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value.replace(' ', '+')}" for name, value in pairs)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("borough", "Bronx"), ("borough", "Queens")], [101, 104, 106]),
        ([("borough", "Queens"), ("borough", "Bronx")], [101, 104, 106]),
        ([("borough", "Queens"), ("borough", "Queens")], [101]),
        ([("health", "Good"), ("health", "Poor")], [101, 103, 106]),
        ([("status", "Dead"), ("status", "Stump")], [104, 105]),
        ([("steward", "1or2"), ("steward", "3or4")], [102, 106]),
        ([("curb_loc", "OnCurb"), ("curb_loc", "OffsetFromCurb")], [101, 102, 103, 104, 105, 106]),
        ([("sidewalk", "Damage"), ("sidewalk", "NoDamage")], [101, 102, 103, 106]),
        ([("zipcode", "11375"), ("zipcode", "10024")], [101, 103]),
        ([("nta", "QN17"), ("nta", "BK31"), ("nta", "SI22")], [101, 102, 105]),
        ([("species", "pin oak"), ("species", "ACER RUBRUM")], [101, 102, 106]),
        # AND across parameters, OR within one
        ([("borough", "Bronx"), ("borough", "Queens"), ("health", "Good")], [101, 106]),
        ([("borough", "Bronx"), ("borough", "Brooklyn"), ("status", "Dead")], [104]),
    ],
)
def test_a_repeated_categorical_filter_matches_any_of_its_values(
    api_client, census, pairs, expected
):
    assert listed_ids(api_client.get(f"{TREES}?{query_string(pairs)}")) == expected


def test_a_repeated_species_id_matches_any_of_them(api_client, census):
    oak, plane = census["species"]["oak"].id, census["species"]["plane"].id
    response = api_client.get(f"{TREES}?species_id={oak}&species_id={plane}")
    assert listed_ids(response) == [102, 103]


@pytest.mark.parametrize("value", ["100%", "%s", "%(value)s", "%"])
def test_a_bad_value_with_a_percent_sign_is_a_400(api_client, census, value):
    body = assert_bad_parameter(api_client.get(TREES, {"borough": [value, value]}), "borough")
    assert value in body["errors"]["borough"][0]


def test_one_bad_value_among_repeated_ones_is_a_400_naming_it(api_client, census):
    body = assert_bad_parameter(api_client.get(f"{TREES}?borough=Bronx&borough=Narnia"), "borough")
    assert "Narnia" in body["errors"]["borough"][0]


@pytest.mark.parametrize(
    ("parameter", "values"),
    [
        ("dbh_min", ["3", "30"]),
        ("dbh_max", ["3", "30"]),
        ("dbh_min", ["3", "3"]),  # even the same value twice: one value, or a 400
        ("bbox", ["-74,40.6,-73.9,40.8", "-73.99,40.75,-73.97,40.77"]),
        ("near", [f"{LAT},{LON}", "40.8,-73.9"]),
        ("radius", ["100", "600"]),
        ("page_size", ["1", "2"]),
        ("ordering", ["tree_id", "-tree_id"]),
        ("cursor", [encoded("p=101"), encoded("p=103")]),
        ("format", ["json", "geojson"]),
        ("problem", ["Stones", "BranchLights"]),
    ],
)
def test_a_repeated_single_valued_parameter_is_a_400_naming_it(
    api_client, census, parameter, values
):
    url = f"{TREES}?{query_string([(parameter, value) for value in values])}"
    body = assert_bad_parameter(api_client.get(url), parameter)
    assert "takes one value" in body["errors"][parameter][0]


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/trees/101/?format=json&format=geojson", "format"),
        ("/api/v1/stats/?dbh_min=1&dbh_min=2", "dbh_min"),
        ("/api/v1/species/?search=maple&search=oak", "search"),
        ("/api/v1/species/?ordering=latin_name&ordering=-tree_count", "ordering"),
    ],
)
def test_every_endpoint_refuses_a_repeated_single_valued_parameter(
    api_client, census, url, parameter
):
    assert_bad_parameter(api_client.get(url), parameter)


def test_stats_count_any_of_the_repeated_values(api_client, census):
    body = api_client.get("/api/v1/stats/?borough=Bronx&borough=Queens&status=Alive").json()
    assert body["total"] == 2  # 101 (Queens) and 106 (Bronx); 104 is dead
    assert {row["value"]: row["count"] for row in body["by_borough"] if row["count"]} == {
        "Bronx": 1,
        "Queens": 1,
    }


def test_stats_with_repeated_values_agree_with_the_list(api_client, census):
    query = "borough=Bronx&borough=Brooklyn&health=Fair&health=Good&dbh_min=1"
    total = api_client.get(f"/api/v1/stats/?{query}").json()["total"]
    assert total == len(listed_ids(api_client.get(f"{TREES}?{query}"))) == 2


# --- normalised_query: what the response cache keys by -------------------------------------


def normalised(url_query: str, filterset_class=None, paginator_class=None):
    from django.http import QueryDict

    from trees.api.filters import TreeFilterSet, normalised_query
    from trees.api.pagination import TreeCursorPagination

    return normalised_query(
        QueryDict(url_query),
        filterset_class or TreeFilterSet,
        paginator_class or TreeCursorPagination,
    )


def test_normalised_query_holds_the_validated_values():
    assert sorted(normalised("borough=Queens&borough=Bronx&borough=Queens&dbh_min=07")) == [
        ("borough", ("Bronx", "Queens")),
        ("dbh_min", 7),
    ]
    assert normalised("radius=500&page_size=010&ordering=-tree_id") == [
        ("radius", 500.0),
        ("page_size", 10),
        ("ordering", "-tree_id"),
    ]
    assert normalised("") == []


def test_normalised_query_keeps_format_as_given():
    # The responses' links keep it (the cache keys by the negotiated format besides).
    assert normalised("format=geojson") == [("format", "geojson")]


@pytest.mark.parametrize(
    "url_query",
    ["borough=Narnia", "dbh_min=1&dbh_min=2", "borogh=Queens", "zipcode=", "page_size=0"],
)
def test_normalised_query_is_none_for_a_request_the_view_refuses(url_query):
    assert normalised(url_query) is None


@pytest.mark.parametrize(
    "query",
    [
        {"borough": "Queens", "health": ["Good", "Fair"], "dbh_min": "3"},
        {"near": f"{LAT},{LON}", "radius": "300", "species": ["red maple", "pin oak"]},
        {"bbox": "-74.3,40.4,-73.6,41.0", "species_id": ["1", "2"], "zipcode": "11375"},
        {"borough": ["Queens", "Narnia"]},
        {"dbh_min": "1.5"},
        {"species_id": "0"},
        {"near": "91,-73.9"},
        {"nta": ["QN17", "qn17"]},
        {"problem": "a\x00b"},
        {"species": "7" * 5000},
        {"zipcode": ["11375", ""]},
    ],
)
def test_normalised_query_agrees_with_the_view_on_what_is_valid(api_client, census, query):
    from django.http import QueryDict

    url_query = QueryDict(mutable=True)
    for name, values in query.items():
        url_query.setlist(name, values if isinstance(values, list) else [values])
    response = api_client.get(f"{TREES}?{url_query.urlencode()}")
    assert response.status_code in (200, 400)
    assert (normalised(url_query.urlencode()) is not None) == (response.status_code == 200)

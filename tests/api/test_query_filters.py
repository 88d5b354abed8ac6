"""The filters issue 11 added to trees/: every census column people search on, values in any
case, bad values answered with the valid ones; and the same filters on stats/ and species/."""

import datetime

import pytest

from tests.api.conftest import assert_bad_parameter, listed_ids
from trees.api.filters import TreeFilterSet
from trees.models import Tree

TREES = "/api/v1/trees/"
ALL = [101, 102, 103, 104, 105, 106]


@pytest.fixture
def rich_census(census):
    """The shared census of six trees, each also with its own address, survey date, districts
    and problem flags (dead and stump trees without flags, as in the census)."""
    rows = {
        101: {
            "address": "108-01 QUEENS BOULEVARD",
            "guards": "None",
            "user_type": "Volunteer",
            "surveyed_on": datetime.date(2015, 5, 19),
            "community_board": 406,
            "council_district": 29,
            "census_tract": "739",
        },
        102: {
            "address": "8701 4 AVENUE",
            "guards": "Helpful",
            "user_type": "NYC Parks Staff",
            "surveyed_on": datetime.date(2015, 8, 27),
            "community_board": 310,
            "council_district": 43,
            "census_tract": "376.02",
            "root_stone": True,
            "brch_light": True,
        },
        103: {
            "address": "2345 BROADWAY",
            "guards": "Harmful",
            "surveyed_on": datetime.date(2015, 8, 28),
            "community_board": 107,
            "council_district": 6,
            "census_tract": "169",
            "root_other": True,
        },
        104: {
            "address": "5600 Broadway",
            "surveyed_on": datetime.date(2016, 1, 10),
            "community_board": 208,
            "council_district": 11,
            "census_tract": "295",
        },
        105: {
            "surveyed_on": None,
            "community_board": 501,
            "council_district": 50,
            "census_tract": "40",
        },
        106: {
            "guards": "Unsure",
            "surveyed_on": datetime.date(2015, 8, 27),
            "community_board": 208,
            "council_district": 11,
            "census_tract": "295",
            "root_stone": True,
        },
    }
    flags = [name for name in TreeFilterSet.base_filters if name.startswith(("root_", "tr", "br"))]
    for tree_id, values in rows.items():
        if tree_id in (104, 105):
            values |= dict.fromkeys(flags)
        Tree.objects.filter(tree_id=tree_id).update(**values)
    return census


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"address": "broadway"}, [103, 104]),
        ({"address": "8701 4 aVeNuE"}, [102]),
        ({"address": "QUEENS"}, [101]),
        ({"guards": "Helpful"}, [102]),
        ({"guards": ["Harmful", "Unsure"]}, [103, 106]),
        ({"guards": "none"}, [101]),
        ({"user_type": "Volunteer"}, [101]),
        ({"user_type": ["nyc parks staff", "VOLUNTEER"]}, [101, 102]),
        ({"user_type": "TreesCount Staff"}, [103, 104, 105, 106]),
        ({"created_min": "2015-08-27"}, [102, 103, 104, 106]),
        ({"created_max": "2015-08-27"}, [101, 102, 106]),
        ({"created_min": "2015-08-27", "created_max": "2015-08-27"}, [102, 106]),
        ({"created_min": "2015-08-29", "created_max": "2015-12-31"}, []),
        ({"community_board": "208"}, [104, 106]),
        ({"community_board": ["406", "107"]}, [101, 103]),
        ({"council_district": "11"}, [104, 106]),
        ({"council_district": ["29", "50"]}, [101, 105]),
        ({"census_tract": "376.02"}, [102]),
        ({"census_tract": ["295", "739"]}, [101, 104, 106]),
        ({"census_tract": "376"}, []),  # exactly: 376.02 is another tract
        ({"root_stone": "Yes"}, [102, 106]),
        ({"root_stone": "no"}, [101, 103]),  # dead and stump trees have no flags
        ({"root_other": "YES"}, [103]),
        ({"brch_light": "Yes"}, [102]),
        ({"brch_shoe": "Yes"}, []),
        ({"trunk_wire": "No", "root_stone": "Yes"}, [102, 106]),
        ({"species_search": "maple"}, [101, 106]),
        ({"species_search": "ACER"}, [101, 103, 106]),  # Acer rubrum, Platanus x acerifolia
        ({"species_search": "oak"}, [102]),
        ({"species_search": "baobab"}, []),
        ({"borough": "queens"}, [101]),
        ({"borough": ["BRONX", "staten island"]}, [104, 105, 106]),
        ({"health": "good"}, [101, 106]),
        ({"status": "DEAD"}, [104]),
        ({"steward": "1OR2"}, [102]),
        ({"curb_loc": "offsetfromcurb"}, [103]),
        ({"sidewalk": "damage"}, [102]),
        ({"nta": "qn17"}, [101]),
    ],
)
def test_filter_returns_exactly_the_matching_trees(api_client, rich_census, query, expected):
    assert listed_ids(api_client.get(TREES, query)) == expected


@pytest.mark.parametrize(
    ("query", "parameter", "listed"),
    [
        ({"borough": "Narnia"}, "borough", "Manhattan, Bronx, Brooklyn, Queens, Staten Island"),
        ({"health": "Excellent"}, "health", "Good, Fair, Poor"),
        ({"guards": "Maybe"}, "guards", "None, Helpful, Harmful, Unsure"),
        ({"user_type": "Robot"}, "user_type", "TreesCount Staff, Volunteer, NYC Parks Staff"),
        ({"steward": "2"}, "steward", "None, 1or2, 3or4, 4orMore"),
        ({"root_stone": "true"}, "root_stone", "Yes, No"),
        ({"brch_other": "Y"}, "brch_other", "Yes, No"),
    ],
)
def test_a_bad_categorical_value_is_a_400_listing_the_valid_ones(
    api_client, rich_census, query, parameter, listed
):
    body = assert_bad_parameter(api_client.get(TREES, query), parameter)
    assert listed in body["errors"][parameter][0]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"created_min": "2015-8-27"}, "created_min"),
        ({"created_min": "2015-02-30"}, "created_min"),
        ({"created_max": "27/08/2015"}, "created_max"),
        ({"created_max": " 2015-08-27"}, "created_max"),
        ({"created_max": "20150827"}, "created_max"),
        ({"community_board": "99"}, "community_board"),
        ({"community_board": "600"}, "community_board"),
        ({"community_board": "4o6"}, "community_board"),
        ({"council_district": "0"}, "council_district"),
        ({"council_district": "52"}, "council_district"),
        ({"census_tract": "73a"}, "census_tract"),
        ({"census_tract": "376.021"}, "census_tract"),
        ({"census_tract": " 739"}, "census_tract"),
        ({"nta": "Q17"}, "nta"),
        ({"borough": "Quéens"}, "borough"),
        ({"user_type": "NYC Par\u212as Staff"}, "user_type"),  # a Kelvin sign, not a k
        ({"address": "x" * 201}, "address"),
        ({"species_search": "a\x00b"}, "species_search"),
    ],
)
def test_a_bad_value_of_a_new_filter_is_a_400_naming_it(api_client, rich_census, query, parameter):
    assert_bad_parameter(api_client.get(TREES, query), parameter)


@pytest.mark.parametrize("parameter", ["created_min", "root_stone", "address", "species_search"])
def test_a_new_single_valued_filter_given_twice_is_a_400(api_client, rich_census, parameter):
    value = {"created_min": "2015-01-01", "root_stone": "Yes"}.get(parameter, "a")
    assert_bad_parameter(api_client.get(TREES, {parameter: [value, value]}), parameter)


def test_like_wildcards_in_an_address_match_only_themselves(api_client, rich_census):
    assert listed_ids(api_client.get(TREES, {"address": "%"})) == []
    assert listed_ids(api_client.get(TREES, {"address": "_"})) == []


def normalised(url_query: str):
    from django.http import QueryDict

    from trees.api.filters import normalised_query
    from trees.api.pagination import TreeCursorPagination

    return normalised_query(QueryDict(url_query), TreeFilterSet, TreeCursorPagination)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("borough=queens", "borough=Queens"),
        ("borough=QUEENS&borough=bronx", "borough=Bronx&borough=Queens"),
        ("health=good&status=alive", "status=Alive&health=Good"),
        ("nta=qn17", "nta=QN17"),
        ("root_stone=yes", "root_stone=Yes"),
        ("user_type=volunteer", "user_type=Volunteer"),
        ("community_board=0406", "community_board=406"),
    ],
)
def test_spellings_that_mean_the_same_share_a_cache_key(one, other):
    assert normalised(one) is not None
    assert sorted(normalised(one)) == sorted(normalised(other))


def test_the_canonical_value_is_what_the_query_keys_by():
    assert normalised("borough=staten+island&root_stone=NO&created_min=2015-08-27") == [
        ("borough", ("Staten Island",)),
        ("root_stone", "No"),
        ("created_min", datetime.date(2015, 8, 27)),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "guards=Helpful",
        "user_type=Volunteer&borough=Bronx",
        "created_min=2015-08-27",
        "community_board=208",
        "council_district=11",
        "census_tract=295",
        "root_stone=Yes",
        "address=broadway",
        "species_search=maple",
        "species_search=maple&borough=bronx&health=good",
    ],
)
def test_stats_agree_with_the_list_for_each_new_filter(api_client, rich_census, query):
    stats = api_client.get(f"/api/v1/stats/?{query}").json()
    assert stats["total"] == len(listed_ids(api_client.get(f"{TREES}?{query}")))


def test_stats_count_a_species_search_from_the_tree_counts(api_client, rich_census):
    # species_search filters on species only, a column the tree counts have: stats/ sums
    # them (one query fewer on the tree table), and gets the same answer.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        body = api_client.get("/api/v1/stats/", {"species_search": "maple"}).json()
    assert body["total"] == 2
    assert any("trees_treecount" in query["sql"] for query in queries.captured_queries)


@pytest.mark.parametrize(
    "query", ["guards=Helpful", "root_stone=Yes", "created_min=2015-08-27", "census_tract=295"]
)
def test_stats_count_other_new_filters_from_the_trees(api_client, rich_census, query):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(f"/api/v1/stats/?{query}").status_code == 200
    assert not any("trees_treecount" in query["sql"] for query in queries.captured_queries)


def test_species_counts_follow_a_new_filter(api_client, rich_census):
    body = api_client.get("/api/v1/species/", {"root_stone": "yes"}).json()
    assert {(row["latin_name"], row["tree_count"]) for row in body} == {
        ("Acer rubrum", 1),
        ("Quercus palustris", 1),
    }


def test_groups_follow_a_new_filter(api_client, rich_census):
    body = api_client.get("/api/v1/groups/", {"by": "borough", "guards": "harmful"}).json()
    assert [(group["borough"], group["count"]) for group in body["groups"]] == [("Manhattan", 1)]


def test_groups_of_a_species_search_agree_with_the_list(api_client, rich_census):
    body = api_client.get("/api/v1/groups/", {"by": "borough", "species_search": "maple"}).json()
    assert {group["borough"]: group["count"] for group in body["groups"]} == {
        "Queens": 1,
        "Bronx": 1,
    }


def test_filters_combine_with_and(api_client, rich_census):
    query = {"species_search": "maple", "community_board": "208", "created_max": "2015-12-31"}
    assert listed_ids(api_client.get(TREES, query)) == [106]


def test_every_new_filter_is_documented_with_its_rules():
    from tests.api.schema import openapi_schema

    operation = openapi_schema()["paths"][TREES]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["borough"]["schema"]["items"]["pattern"].startswith("^(?:[Mm][Aa]")
    assert parameters["root_stone"]["schema"] == {
        "type": "string",
        "pattern": "^(?:[Yy][Ee][Ss]|[Nn][Oo])$",
    }
    assert parameters["created_min"]["schema"]["format"] == "date"
    assert parameters["community_board"]["schema"]["items"] == {
        "type": "integer",
        "minimum": 100,
        "maximum": 599,
    }
    assert parameters["census_tract"]["schema"]["type"] == "array"
    assert all(parameter.get("description") for parameter in parameters.values())

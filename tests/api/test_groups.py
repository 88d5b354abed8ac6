"""groups/: the trees matching the filters, grouped, each group counted and measured."""

import json
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import assert_bad_parameter
from tests.api.schema import assert_matches_schema
from tests.factories import TreeFactory
from trees.api.filters import TreeFilterSet
from trees.api.serializers import GroupsSerializer
from trees.cache import bump_data_version
from trees.models import Tree
from trees.queries import GROUP_COLUMNS, GROUP_COUNTED_COLUMNS, tree_groups

GROUPS = "/api/v1/groups/"


def groups(api_client, **query) -> list[dict]:
    response = api_client.get(GROUPS, query)
    assert response.status_code == 200, response.content
    return response.json()["groups"]


def test_by_borough_counts_and_measures_each_borough(api_client, census):
    # Bronx: a dead tree (dbh 8, no health) and a Good maple (dbh 50).
    found = [
        (g["borough"], g["count"], g["dbh_mean"], g["dbh_median"], g["poor_share"])
        for g in groups(api_client, by="borough")
    ]
    assert found == [
        ("Bronx", 2, 29.0, 29.0, 0.0),
        ("Brooklyn", 1, 12.0, 12.0, 0.0),
        ("Manhattan", 1, 25.0, 25.0, 1.0),
        ("Queens", 1, 3.0, 3.0, 0.0),
        ("Staten Island", 1, 0.0, 0.0, None),  # a stump: no health recorded, so no share
    ]


def test_groups_have_only_the_columns_grouped_by(api_client, census):
    assert set(groups(api_client, by="borough")[0]) == {
        "borough", "count", "dbh_mean", "dbh_median", "poor_share",
    }  # fmt: skip


def test_body_says_what_it_grouped_by_and_the_total(api_client, census):
    body = api_client.get(GROUPS, {"by": "status,borough", "borough": "Bronx"}).json()
    assert body["by"] == ["status", "borough"]
    assert body["total"] == 2
    assert [(g["status"], g["borough"], g["count"]) for g in body["groups"]] == [
        ("Alive", "Bronx", 1),
        ("Dead", "Bronx", 1),
    ]


def test_species_groups_carry_the_species_names(api_client, census):
    maple = census["species"]["maple"]
    assert groups(api_client, by="species", borough="Bronx") == [
        {
            "species": {"id": maple.id, "latin_name": "Acer rubrum", "common_name": "red maple"},
            "count": 1,
            "dbh_mean": 50.0,
            "dbh_median": 50.0,
            "poor_share": 0.0,
        },
        # The dead tree has no species: its group comes last among equals (nulls last).
        {"species": None, "count": 1, "dbh_mean": 8.0, "dbh_median": 8.0, "poor_share": None},
    ]


def test_repeated_borough_means_either_and_combines_with_other_filters(api_client, census):
    found = groups(api_client, by="species", borough=["Bronx", "Queens"], status="Alive")
    assert [(g["species"]["latin_name"], g["count"], g["dbh_median"]) for g in found] == [
        ("Acer rubrum", 2, 26.5),  # dbh 3 and 50
    ]


def test_old_apps_full_species_list_per_borough_is_one_call(api_client, census):
    found = groups(api_client, by="borough,species")
    pairs = [(g["borough"], g["species"] and g["species"]["common_name"]) for g in found]
    assert sorted(pairs, key=str) == sorted(
        [
            ("Bronx", "red maple"),
            ("Bronx", None),
            ("Brooklyn", "pin oak"),
            ("Manhattan", "London planetree"),
            ("Queens", "red maple"),
            ("Staten Island", None),
        ],
        key=str,
    )


def test_groups_are_largest_first_then_by_value(api_client, census):
    TreeFactory(tree_id=201, nta="BK31", borough="Brooklyn")
    TreeFactory(tree_id=202, nta="BK31", borough="Brooklyn")
    found = groups(api_client, by="nta")
    assert [(g["nta"], g["count"]) for g in found] == [
        ("BK31", 3),
        ("BX29", 2),
        ("MN12", 1),
        ("QN17", 1),
        ("SI22", 1),
    ]


@pytest.mark.parametrize(
    "by",
    [
        "nta",
        "zipcode,health",
        "council_district,curb_loc,user_type",
        "borough",  # from the counts (TreeCount)
        "species,health,status",  # from the counts
    ],
)
def test_groups_equal_sql(api_client, census, by):
    TreeFactory.create_batch(5, tree_dbh=7, health="Poor", council_district=33)
    TreeFactory.create_batch(3, tree_dbh=None, borough="Bronx")
    columns = ", ".join(by.split(",")).replace("species", "species_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, count(*), avg(tree_dbh)::float, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY tree_dbh), "
            "(count(*) FILTER (WHERE health = 'Poor'))::float "
            "/ NULLIF(count(*) FILTER (WHERE health <> ''), 0) "
            f"FROM trees_tree GROUP BY {columns}"
        )
        expected = {
            tuple(None if v == "" else v for v in row[: len(by.split(","))]): row[-4:]
            for row in cursor.fetchall()
        }
    found = {
        tuple(
            g[column]["id"] if column == "species" and g[column] else g[column]
            for column in by.split(",")
        ): (
            g["count"],
            g["dbh_mean"],
            g["dbh_median"],
            g["poor_share"],
        )
        for g in groups(api_client, by=by)
    }
    assert found == {key: tuple(value) for key, value in expected.items()}


def tables_read(api_client, query: dict) -> set[str]:
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(GROUPS, query).status_code == 200
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    tables = ("trees_tree", "trees_treecount", "trees_treegroupcount")
    return {table for table in tables if f'"{table}"' in sql}


def test_groups_by_and_filtered_on_counted_columns_read_only_the_counts(api_client, census):
    query = {"by": "borough,species", "health": "Good", "dbh_min": "3", "species": "red maple"}
    assert tables_read(api_client, query) == {"trees_treecount"}
    assert [
        (g["borough"], g["count"]) for g in api_client.get(GROUPS, query).json()["groups"]
    ] == [
        ("Bronx", 1),
        ("Queens", 1),
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"by": "nta", "health": "Good"},
        {"by": "borough", "zipcode": "11375"},
        {"by": "nta,borough"},
    ],
)
def test_groups_by_or_filtered_on_other_columns_read_the_trees(api_client, census, query):
    assert tables_read(api_client, query) == {"trees_tree"}


@pytest.mark.parametrize("query", [{"by": "nta"}, {"by": "council_district", "dbh_min": "10"}])
def test_groups_by_one_group_counted_column_read_only_its_counts(api_client, census, query):
    assert tables_read(api_client, query) == {"trees_treegroupcount"}


@pytest.mark.parametrize("column", sorted(GROUP_COUNTED_COLUMNS))
@pytest.mark.parametrize("query", [{}, {"dbh_min": "5", "dbh_max": "40"}], ids=["all", "dbh"])
def test_group_counts_answer_as_the_trees_do(api_client, census, column, query):
    """Same groups, order, means, medians and shares as the same query of the trees."""
    TreeFactory.create_batch(
        4,
        tree_dbh=7,
        health="Poor",
        council_district=33,
        community_board=101,
        nta="BX29",
        user_type="Volunteer",
    )
    TreeFactory.create_batch(
        3, tree_dbh=None, community_board=None, steward="", guards="", curb_loc="", sidewalk=""
    )
    trees = TreeFilterSet(QueryDict(urlencode(query)), queryset=Tree.objects.all()).qs
    from_trees = tree_groups(trees, [column])
    assert len(from_trees) > 1
    body = GroupsSerializer({"by": [column], "total": 0, "groups": from_trees}).data
    assert groups(api_client, by=column, **query) == json.loads(json.dumps(body["groups"]))


def test_every_group_column_can_be_grouped_by(api_client, census):
    for column in GROUP_COLUMNS:
        assert sum(g["count"] for g in groups(api_client, by=column)) == 6, column


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"by": "height"},
        {"by": "borough,borough"},
        {"by": "borough,nta,species,health"},
        {"by": ["borough", "nta"]},
        {"by": "borough,"},
    ],
    ids=["missing", "unknown", "repeated-column", "four-columns", "given-twice", "empty-column"],
)
def test_bad_by_is_a_400_naming_it(api_client, census, query):
    body = assert_bad_parameter(api_client.get(GROUPS, query), "by")
    assert "council_district" in body["errors"]["by"][0]  # lists the valid columns


def test_bad_filter_is_a_400(api_client, census):
    assert_bad_parameter(api_client.get(GROUPS, {"by": "nta", "borough": "Narnia"}), "borough")


def test_response_matches_the_schema(api_client, census):
    assert_matches_schema(api_client.get(GROUPS, {"by": "species,borough"}), GROUPS)
    assert_matches_schema(api_client.get(GROUPS, {"by": "nope"}), GROUPS)


def test_second_request_is_a_cache_hit(api_client, census):
    assert api_client.get(GROUPS, {"by": "borough"})["X-Cache"] == "MISS"
    assert api_client.get(GROUPS, {"by": "borough"})["X-Cache"] == "HIT"


def test_cache_keys_by_by(api_client, census):
    by_borough = api_client.get(GROUPS, {"by": "borough"})
    by_nta = api_client.get(GROUPS, {"by": "nta"})
    assert by_nta["X-Cache"] == "MISS"
    assert by_borough.json() != by_nta.json()
    # The same meaning, another spelling of the filters: one entry.
    api_client.get(GROUPS, {"by": "nta", "borough": ["Queens", "Bronx"]})
    again = api_client.get(GROUPS, {"borough": ["Bronx", "Queens", "Bronx"], "by": "nta"})
    assert again["X-Cache"] == "HIT"


@pytest.mark.django_db(transaction=True)  # the new version is published on commit
def test_data_change_is_served_after_the_version_bump(api_client, census):
    first = groups(api_client, by="health", borough="Queens")
    assert api_client.get(GROUPS, {"by": "health", "borough": "Queens"})["X-Cache"] == "HIT"
    with transaction.atomic():
        Tree.objects.filter(tree_id=101).update(health="Poor")
        bump_data_version()
    after = api_client.get(GROUPS, {"by": "health", "borough": "Queens"})
    assert after["X-Cache"] == "MISS"
    assert [g["health"] for g in first] == ["Good"]
    assert [(g["health"], g["poor_share"]) for g in after.json()["groups"]] == [("Poor", 1.0)]

"""The endpoints' answers: trees, one tree, species, stats (against SQL), docs and schema."""

import random
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import assert_bad_parameter
from tests.factories import SpeciesFactory, TreeFactory
from trees.models import Borough, Health, Status

TREES = "/api/v1/trees/"


def test_list_shows_each_tree_with_its_species(api_client, census):
    first = api_client.get(TREES).json()["results"][0]
    assert first["tree_id"] == 101
    assert first["species"] == {
        "id": census["species"]["maple"].id,
        "latin_name": "Acer rubrum",
        "common_name": "red maple",
    }
    assert first["surveyed_on"] == "2015-08-27"
    assert first["borough"] == "Queens"


def test_dead_trees_have_no_species(api_client, census):
    dead = api_client.get(TREES, {"status": "Dead"}).json()["results"][0]
    assert dead["species"] is None
    assert dead["health"] == ""


def test_detail_shows_every_field(api_client, census):
    body = api_client.get(f"{TREES}103/").json()
    assert body["tree_id"] == 103
    assert body["species"]["common_name"] == "London planetree"
    assert body["curb_loc"] == "OffsetFromCurb"
    # Fields the list leaves out are here.
    assert body["bbl"] == 4022210001
    assert body["root_stone"] is False
    assert body["nta_name"] == "Forest Hills"


def test_unknown_tree_is_a_json_404(api_client, census):
    response = api_client.get(f"{TREES}999/")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "detail": "No Tree matches the given query."}


@pytest.mark.parametrize("tree_id", ["abc", "1.5", "-1", "9" * 30, "%00"])
def test_malformed_tree_id_is_a_json_404(api_client, census, tree_id):
    response = api_client.get(f"{TREES}{tree_id}/")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "detail": "Not found."}


def test_unknown_api_path_is_a_json_404(api_client, db):
    response = api_client.get("/api/v1/forests/")
    assert response.status_code == 404
    assert response.json()["status"] == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", [TREES, f"{TREES}101/", "/api/v1/species/", "/api/v1/stats/"])
def test_writes_are_refused_with_405(api_client, census, method, url):
    response = getattr(api_client, method)(url, {"status": "Dead"}, format="json")
    assert response.status_code == 405
    assert response.json()["status"] == 405
    assert api_client.get(f"{TREES}101/").json()["status"] == "Alive"


def test_head_answers_like_get_without_a_body(api_client, census):
    response = api_client.head(TREES)
    assert response.status_code == 200
    assert response["ETag"]
    assert response.content == b""


def test_species_list_counts_trees(api_client, census):
    SpeciesFactory(latin_name="Zelkova serrata", common_name="Japanese zelkova")
    body = api_client.get("/api/v1/species/").json()
    assert [(s["latin_name"], s["tree_count"]) for s in body] == [
        ("Acer rubrum", 2),
        ("Platanus x acerifolia", 1),
        ("Quercus palustris", 1),
        ("Zelkova serrata", 0),
    ]


def test_species_search_matches_part_of_either_name(api_client, census):
    by_common = api_client.get("/api/v1/species/", {"search": "MAPLE"}).json()
    by_latin = api_client.get("/api/v1/species/", {"search": "platanus"}).json()
    assert [s["common_name"] for s in by_common] == ["red maple"]
    assert [s["common_name"] for s in by_latin] == ["London planetree"]


def test_species_can_be_ordered_by_tree_count(api_client, census):
    body = api_client.get("/api/v1/species/", {"ordering": "-tree_count"}).json()
    assert body[0]["latin_name"] == "Acer rubrum"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [({"ordering": "height"}, "ordering"), ({"search": "x" * 500}, "search"), ({"q": "oak"}, "q")],
)
def test_species_bad_parameter_is_a_400(api_client, census, query, parameter):
    assert_bad_parameter(api_client.get("/api/v1/species/", query), parameter)


def test_species_detail(api_client, census):
    oak = census["species"]["oak"]
    assert api_client.get(f"/api/v1/species/{oak.id}/").json() == {
        "id": oak.id,
        "latin_name": "Quercus palustris",
        "common_name": "pin oak",
        "tree_count": 1,
    }
    assert api_client.get("/api/v1/species/99999/").status_code == 404


def test_species_counts_follow_a_tree_filter(api_client, census):
    body = api_client.get("/api/v1/species/", {"borough": "Bronx"}).json()
    # Only the Bronx's maple; oak and plane have no tree there and are left out.
    assert [(s["latin_name"], s["tree_count"]) for s in body] == [("Acer rubrum", 1)]


def test_species_tree_filters_combine_with_search_and_ordering(api_client, census):
    body = api_client.get(
        "/api/v1/species/",
        {"borough": ["Queens", "Brooklyn", "Manhattan"], "search": "a", "ordering": "-latin_name"},
    ).json()
    assert [(s["latin_name"], s["tree_count"]) for s in body] == [
        ("Quercus palustris", 1),
        ("Platanus x acerifolia", 1),
        ("Acer rubrum", 1),
    ]


def test_species_tree_filter_near_counts_trees_in_the_circle(api_client, census):
    body = api_client.get("/api/v1/species/", {"near": "40.7,-73.9", "radius": 150}).json()
    assert [(s["common_name"], s["tree_count"]) for s in body] == [
        ("red maple", 1),
        ("pin oak", 1),
    ]


def test_species_bad_tree_filter_is_a_400(api_client, census):
    assert_bad_parameter(api_client.get("/api/v1/species/", {"borough": "Narnia"}), "borough")


def test_species_filtered_responses_are_cached_apart(api_client, census):
    all_species = api_client.get("/api/v1/species/").json()
    bronx = api_client.get("/api/v1/species/", {"borough": "Bronx"})
    assert bronx["X-Cache"] == "MISS"
    assert len(bronx.json()) < len(all_species)
    assert api_client.get("/api/v1/species/", {"borough": "Bronx"})["X-Cache"] == "HIT"


# --- root --------------------------------------------------------------------------------------


def test_api_root_lists_the_endpoints_and_docs(api_client, db):
    response = api_client.get("/api/v1/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["endpoints"] == {
        name: f"http://testserver/api/v1/{name}/"
        for name in ("trees", "species", "stats", "groups")
    }
    assert body["docs"] == "http://testserver/api/v1/docs/"
    assert body["schema"] == "http://testserver/api/v1/schema/"
    for url in (*body["endpoints"].values(), body["schema"]):
        if not url.endswith("/groups/"):  # which needs `by`
            assert api_client.get(url).status_code == 200, url


# --- stats -------------------------------------------------------------------------------------


@pytest.fixture
def varied_census(db):
    """Eighty trees with seeded random attributes, for counts worth checking."""
    rng = random.Random(2015)
    species = [SpeciesFactory() for _ in range(14)]
    for tree_id in range(1, 81):
        status = rng.choice(["Alive"] * 8 + ["Dead", "Stump"])
        alive = status == "Alive"
        TreeFactory(
            tree_id=tree_id,
            status=status,
            health=rng.choice(Health.values) if alive else "",
            species=rng.choice(species) if alive else None,
            borough=rng.choice(Borough.values[:4]),  # Staten Island stays at 0
            tree_dbh=rng.choice([None, *range(60)]),
        )


def sql_counts(column: str, where: str = "TRUE") -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}, count(*) FROM trees_tree WHERE {where} GROUP BY 1")
        return dict(cursor.fetchall())


def stats_tallies(stats: dict, key: str) -> dict:
    return {entry["value"]: entry["count"] for entry in stats[key] if entry["count"]}


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({}, "TRUE"),
        ({"borough": "Bronx"}, "borough = 'Bronx'"),
        ({"status": "Alive", "dbh_min": "20"}, "status = 'Alive' AND tree_dbh >= 20"),
        ({"health": "Good", "dbh_max": "30"}, "health = 'Good' AND tree_dbh <= 30"),
        # Not a counted column: counted from the trees themselves.
        ({"borough": "Queens", "zipcode": "11375"}, "borough = 'Queens' AND zipcode = '11375'"),
    ],
)
def test_stats_equal_sql_counts(api_client, varied_census, query, where):
    stats = api_client.get("/api/v1/stats/", query).json()

    assert stats["total"] == sum(sql_counts("borough", where).values())
    assert stats_tallies(stats, "by_borough") == sql_counts("borough", where)
    assert stats_tallies(stats, "by_status") == sql_counts("status", where)
    health = {value or None: count for value, count in sql_counts("health", where).items()}
    assert stats_tallies(stats, "by_health") == health

    by_species = sql_counts("species_id", where)
    by_species.pop(None, None)
    expected_top = sorted(by_species.items(), key=lambda pair: (-pair[1], pair[0]))[:10]
    assert [(s["id"], s["count"]) for s in stats["top_species"]] == expected_top

    diameters = sql_counts("tree_dbh", where)
    expected_bins = Counter()
    for dbh, count in diameters.items():
        if dbh is not None:
            expected_bins[min(dbh // 6, 8)] += count
    assert [b["count"] for b in stats["diameter_histogram"]] == [
        expected_bins[n] for n in range(9)
    ]


def tables_read(api_client, query: dict) -> set[str]:
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/v1/stats/", query).status_code == 200
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    return {table for table in ("trees_tree", "trees_treecount") if f'"{table}"' in sql}


def test_stats_filtered_by_counted_columns_read_only_the_counts(api_client, varied_census):
    query = {"borough": "Bronx", "health": "Good", "species_id": "1", "dbh_min": "3"}
    assert tables_read(api_client, query) == {"trees_treecount"}


def test_stats_filtered_by_other_columns_read_the_trees(api_client, varied_census):
    assert tables_read(api_client, {"borough": "Bronx", "nta": "QN17"}) == {"trees_tree"}


def test_stats_list_every_value_even_when_absent(api_client, varied_census):
    stats = api_client.get("/api/v1/stats/").json()
    assert [entry["value"] for entry in stats["by_borough"]] == Borough.values
    assert {"value": "Staten Island", "count": 0} in stats["by_borough"]
    assert [entry["value"] for entry in stats["by_status"]] == Status.values
    assert [entry["value"] for entry in stats["by_health"]] == [*Health.values, None]
    bins = stats["diameter_histogram"]
    assert (bins[0]["min_inches"], bins[0]["max_inches"]) == (0, 6)
    assert (bins[-1]["min_inches"], bins[-1]["max_inches"]) == (48, None)


def test_stats_of_nothing_are_zeros(api_client, census):
    stats = api_client.get("/api/v1/stats/", {"species": "no such tree"}).json()
    assert stats["total"] == 0
    assert stats["top_species"] == []
    assert {entry["count"] for entry in stats["by_borough"]} == {0}


def test_stats_accept_geographic_filters(api_client, census):
    lat, lon = 40.7, -73.9
    stats = api_client.get("/api/v1/stats/", {"near": f"{lat},{lon}", "radius": "301"}).json()
    assert stats["total"] == 3
    assert stats_tallies(stats, "by_borough") == {"Queens": 1, "Brooklyn": 1, "Manhattan": 1}


def test_stats_take_no_paging_parameters(api_client, census):
    assert_bad_parameter(api_client.get("/api/v1/stats/", {"page_size": "5"}), "page_size")


# --- docs and schema ---------------------------------------------------------------------------


def test_docs_page_serves_swagger_ui_from_this_site(api_client, db):
    response = api_client.get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert "<script>" not in page  # the Content-Security-Policy allows no inline script
    assert '<script src="/api/v1/docs/?script="></script>' in page


def test_docs_start_up_script_is_served_as_a_file(api_client, db):
    response = api_client.get("/api/v1/docs/", {"script": ""})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    script = response.content.decode()
    assert '"/api/v1/schema/"' in script


def test_schema_endpoint_serves_openapi(api_client, db):
    response = api_client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/trees/", "/api/v1/trees/{tree_id}/", "/api/v1/stats/"} <= set(schema["paths"])

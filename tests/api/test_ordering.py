"""ordering= with exact cursor paging: every order, forwards and back, with ties and nulls,
yields each tree exactly once and in the order documented; a bad cursor is a 404."""

import base64
import datetime
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import CENTRE, assert_bad_parameter, listed_ids
from tests.factories import SpeciesFactory, TreeFactory
from trees.cache import bump_data_version
from trees.models import Tree

TREES = "/api/v1/trees/"
ORDERINGS = [
    "tree_id", "-tree_id", "tree_dbh", "-tree_dbh", "created_at", "-created_at", "species",
    "-species",
]  # fmt: skip
# What each ordering sorts by, from a tree's JSON.
VALUE = {
    "tree_id": lambda tree: None,
    "tree_dbh": lambda tree: tree["tree_dbh"],
    "created_at": lambda tree: tree["surveyed_on"],
    "species": lambda tree: tree["species"] and tree["species"]["latin_name"],
}


@pytest.fixture
def tied_census(db):
    """40 trees whose diameters, dates and species tie by the dozen, some without any.

    Ids with gaps and created out of id order; species created out of latin name order.
    """
    species = [
        SpeciesFactory(latin_name=name, common_name=name.lower())
        for name in ("Zelkova serrata", "Acer rubrum", "Quercus palustris", "Acer platanoides")
    ]
    diameters = [None, 3, 3, 12, 3, 0, 12, None, 25]
    dates = [datetime.date(2015, 8, 27), None, datetime.date(2015, 5, 19)]
    ids = [11 * n + 5 for n in range(40)]
    for n, tree_id in zip(itertools.count(), reversed(ids)):
        TreeFactory(
            tree_id=tree_id,
            tree_dbh=diameters[n % len(diameters)],
            surveyed_on=dates[n % len(dates)],
            species=None if n % 7 == 3 else species[n % len(species)],
        )
    return ids


def expected_order(trees: list[dict], ordering: str) -> list[int]:
    """The documented order: by value then tree_id (descending: both reversed), trees without
    a value last either way (by tree_id, reversed when descending)."""
    name = ordering.lstrip("-")
    descending = ordering.startswith("-")
    with_value = [tree for tree in trees if VALUE[name](tree) is not None]
    without = [tree for tree in trees if VALUE[name](tree) is None]
    with_value.sort(key=lambda tree: (VALUE[name](tree), tree["tree_id"]), reverse=descending)
    without.sort(key=lambda tree: tree["tree_id"], reverse=descending)
    return [tree["tree_id"] for tree in with_value + without]


def all_trees(api_client) -> list[dict]:
    return api_client.get(TREES, {"page_size": 1000}).json()["results"]


def walk(api_client, url, params=None, link="next"):
    pages = []
    response = api_client.get(url, params)
    while True:
        pages.append(listed_ids(response))
        url = response.json()[link]
        if url is None:
            return pages, response
        response = api_client.get(url)


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("page_size", [1, 4, 7, 40])
def test_paging_forwards_yields_every_tree_once_in_order(
    api_client, tied_census, ordering, page_size
):
    expected = expected_order(all_trees(api_client), ordering)
    pages, _ = walk(api_client, TREES, {"ordering": ordering, "page_size": page_size})
    assert [tree_id for page in pages for tree_id in page] == expected
    assert all(len(page) == page_size for page in pages[:-1])


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("page_size", [1, 3, 7])
def test_paging_backwards_from_the_last_page_yields_every_tree_once_in_order(
    api_client, tied_census, ordering, page_size
):
    expected = expected_order(all_trees(api_client), ordering)
    _, last = walk(api_client, TREES, {"ordering": ordering, "page_size": page_size})
    pages, first = walk(api_client, last.wsgi_request.get_full_path(), link="previous")
    assert [tree_id for page in reversed(pages) for tree_id in page] == expected
    assert first.json()["previous"] is None
    assert all(len(page) == page_size for page in pages[1:])  # the first page is whole too


def test_the_orders_put_ties_and_nulls_where_documented(api_client, tied_census):
    body = api_client.get(TREES, {"ordering": "-tree_dbh", "page_size": 1000}).json()
    diameters = [(tree["tree_dbh"], tree["tree_id"]) for tree in body["results"]]
    assert diameters[0][0] == 25
    assert diameters[-1][0] is None  # no diameter: last, descending too
    threes = [tree_id for dbh, tree_id in diameters if dbh == 3]
    assert len(threes) > 10
    assert threes == sorted(threes, reverse=True)
    ascending = api_client.get(TREES, {"ordering": "species", "page_size": 1000}).json()
    names = [tree["species"] and tree["species"]["latin_name"] for tree in ascending["results"]]
    assert names[0] == "Acer platanoides"
    assert names[-1] is None


def copy_of(tree: dict, tree_id: int) -> None:
    TreeFactory(
        tree_id=tree_id,
        tree_dbh=tree["tree_dbh"],
        surveyed_on=tree["surveyed_on"],
        species_id=tree["species"] and tree["species"]["id"],
    )


@pytest.mark.parametrize("ordering", ["tree_dbh", "-tree_dbh", "species", "-created_at"])
def test_changes_between_pages_neither_repeat_nor_skip_a_tree(api_client, tied_census, ordering):
    first = api_client.get(TREES, {"ordering": ordering, "page_size": 6}).json()
    second = api_client.get(first["next"]).json()
    seen = [tree["tree_id"] for tree in first["results"] + second["results"]]
    trees = {tree["tree_id"]: tree for tree in all_trees(api_client)}
    ahead, gone = expected_order(list(trees.values()), ordering)[15:17]
    # The tree the cursor names leaves, and one further on; one comes back further on (a
    # copy of another), and one arrives before the cursor (a copy of the very first tree,
    # tie-broken before it).
    Tree.objects.filter(tree_id__in=[seen[-1], ahead, gone]).delete()
    copy_of(trees[ahead], ahead + 1)
    copy_of(first["results"][0], 10**6 if ordering.startswith("-") else 1)
    bump_data_version()  # as a sync does: no cached page of before
    remaining = expected_order(all_trees(api_client), ordering)
    pages, _ = walk(api_client, second["next"])
    rest = [tree_id for page in pages for tree_id in page]
    assert len(set(seen + rest)) == len(seen + rest)  # nothing twice
    assert rest == remaining[remaining.index(seen[-2]) + 1 :]  # all that follows, in order
    assert ahead + 1 in rest
    assert gone not in rest


def test_previous_after_trees_before_went_away_is_the_whole_first_page(api_client, tied_census):
    first = api_client.get(TREES, {"ordering": "tree_dbh", "page_size": 5}).json()
    second = api_client.get(first["next"]).json()
    Tree.objects.filter(tree_id__in=[tree["tree_id"] for tree in first["results"][:3]]).delete()
    bump_data_version()
    back = api_client.get(second["previous"]).json()
    expected = expected_order(all_trees(api_client), "tree_dbh")[:5]
    assert [tree["tree_id"] for tree in back["results"]] == expected
    assert back["previous"] is None


def test_an_ordering_combines_with_filters(api_client, tied_census):
    query = {"ordering": "-species", "dbh_min": "3", "dbh_max": "12", "page_size": 4}
    everything = api_client.get(TREES, {**query, "page_size": 1000}).json()["results"]
    pages, _ = walk(api_client, TREES, query)
    assert [tree_id for page in pages for tree_id in page] == expected_order(
        everything, "-species"
    )
    assert {tree["tree_dbh"] for tree in everything} == {3, 12}


def test_distance_order_pages_through_ties_once_backwards_too(api_client, db):
    lat, lon = CENTRE
    for tree_id in range(1, 8):
        TreeFactory(tree_id=tree_id, latitude=lat + 0.0001, longitude=lon)
    for tree_id, step in zip(range(8, 12), range(2, 6), strict=True):
        TreeFactory(tree_id=tree_id, latitude=lat + 0.0001 * step, longitude=lon)
    query = {"near": f"{lat},{lon}", "radius": "100", "ordering": "distance", "page_size": 3}
    pages, last = walk(api_client, TREES, query)
    assert [tree_id for page in pages for tree_id in page] == list(range(1, 12))
    back, _ = walk(api_client, last.wsgi_request.get_full_path(), link="previous")
    assert [tree_id for page in reversed(back) for tree_id in page] == list(range(1, 12))


@pytest.mark.parametrize("ordering", ["-tree_dbh", "species", "created_at"])
def test_a_deep_page_is_one_index_range_without_offset(api_client, tied_census, ordering):
    first = api_client.get(TREES, {"ordering": ordering, "page_size": 5}).json()
    second = api_client.get(first["next"]).json()
    with CaptureQueriesContext(connection) as queries:
        api_client.get(second["next"])
    trees = [query["sql"] for query in queries.captured_queries if "trees_tree" in query["sql"]]
    assert trees
    assert not any("OFFSET" in sql.upper() for sql in trees)
    assert len(trees) <= 2  # the trees with a value, then (at the end) those without


def test_the_default_order_keeps_drf_cursors(api_client, tied_census):
    # A link a client kept from before (DRF's cursor: `p=<tree_id>`) still works.
    cursor = base64.b64encode(f"p={tied_census[4]}".encode()).decode()
    assert (
        listed_ids(api_client.get(TREES, {"cursor": cursor, "page_size": 2})) == tied_census[5:7]
    )


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("ordering", "cursor"),
    [
        ("tree_dbh", encoded("s=tree_dbh&v=abc&p=5")),
        ("tree_dbh", encoded("s=tree_dbh&v=40000&p=5")),
        ("tree_dbh", encoded("s=tree_dbh&v=-3&p=5")),
        ("tree_dbh", encoded("s=tree_dbh&v=3.5&p=5")),
        ("tree_dbh", encoded("s=species&v=3&p=5")),  # another ordering's cursor
        ("tree_dbh", encoded("v=3&p=5")),
        ("tree_dbh", encoded("s=tree_dbh&v=3")),  # no tree_id
        ("tree_dbh", encoded("s=tree_dbh&v=3&p=5&r=2")),
        ("tree_dbh", encoded("s=tree_dbh&v=3&p=5&o=1")),  # DRF's offset: not any more
        ("tree_dbh", encoded("s=tree_dbh&v=3&v=4&p=5")),
        ("tree_dbh", encoded("s=tree_dbh&v=3&p=99999999999999999999")),
        ("created_at", encoded("s=created_at&v=2015-02-30&p=5")),
        ("created_at", encoded("s=created_at&v=20150827&p=5")),
        ("species", encoded("s=species&v=Acer\x00rubrum&p=5")),
        ("species", encoded("s=species&v=&p=5")),
        ("species", encoded("s=species&v=" + "A" * 201 + "&p=5")),
        ("-species", encoded("s=species&v=Acer+rubrum&p=5")),
        ("tree_id", encoded("s=tree_id&p=5")),
        ("tree_id", encoded("v=3&p=5")),
        ("tree_id", encoded("p=5&junk")),
        ("tree_id", "cD01"[:-1]),  # bad padding
        ("tree_id", base64.b64encode(b"p=\xff\xfe").decode()),
        ("tree_id", "A" * 4004),
    ],
)
def test_a_cursor_no_response_gave_is_a_404(api_client, tied_census, ordering, cursor):
    response = api_client.get(TREES, {"ordering": ordering, "cursor": cursor})
    assert response.status_code == 404, response.content
    assert response.json()["detail"].startswith("Invalid cursor")


def test_a_cursor_from_one_ordering_is_a_404_in_another(api_client, tied_census):
    link = api_client.get(TREES, {"ordering": "tree_dbh", "page_size": 2}).json()["next"]
    cursor = link.split("cursor=")[1].split("&")[0].replace("%3D", "=").replace("%2B", "+")
    response = api_client.get(TREES, {"ordering": "species", "page_size": 2, "cursor": cursor})
    assert response.status_code == 404


def test_distance_cursors_refuse_what_is_not_a_distance(api_client, tied_census):
    for value in ("nan", "inf", "-1", "far"):
        cursor = encoded(f"s=distance&v={value}&p=5")
        query = {"near": f"{CENTRE[0]},{CENTRE[1]}", "ordering": "distance", "cursor": cursor}
        assert api_client.get(TREES, query).status_code == 404, value


def test_an_unknown_ordering_is_a_400_listing_the_valid_ones(api_client, tied_census):
    body = assert_bad_parameter(api_client.get(TREES, {"ordering": "height"}), "ordering")
    message = body["errors"]["ordering"][0]
    assert all(name in message for name in [*ORDERINGS, "distance"])


def test_every_ordering_is_documented():
    from tests.api.schema import openapi_schema

    operation = openapi_schema()["paths"][TREES]["get"]
    ordering = next(p for p in operation["parameters"] if p["name"] == "ordering")
    assert ordering["schema"]["enum"] == [*ORDERINGS, "distance"]


@pytest.mark.parametrize("ordering", ["-tree_dbh", "species"])
def test_an_ordering_pages_a_near_query_in_geojson_too(api_client, tied_census, ordering):
    # The species order runs its own SQL: the distance annotation and the format come along.
    lat, lon = CENTRE
    Tree.objects.update(latitude=lat, longitude=lon)
    query = {"near": f"{lat},{lon}", "ordering": ordering, "page_size": 6, "format": "geojson"}
    body = api_client.get(TREES, query).json()
    ids = [feature["id"] for feature in body["features"]]
    while body["next"]:
        body = api_client.get(body["next"]).json()
        ids += [feature["id"] for feature in body["features"]]
        assert all(f["properties"]["distance"] == 0 for f in body["features"])
    assert ids == expected_order(all_trees(api_client), ordering)


def test_a_species_cursor_carries_any_latin_name(api_client, db):
    # Characters a query string and base64 treat specially, non-ASCII, and the longest name.
    names = ["Acer & Betula = x+y", "Betula 'ü' %20 Ärle", "Z" * 199 + "é"]
    for tree_id, name in enumerate(names * 2, start=1):
        TreeFactory(tree_id=tree_id, species=SpeciesFactory(latin_name=name))
    pages, last = walk(api_client, TREES, {"ordering": "species", "page_size": 1})
    assert [tree_id for page in pages for tree_id in page] == [1, 4, 2, 5, 3, 6]
    back, _ = walk(api_client, last.wsgi_request.get_full_path(), link="previous")
    assert [tree_id for page in back for tree_id in page] == [6, 3, 5, 2, 4, 1]

"""Cursor paging: every tree exactly once, forwards and back, whatever the page size."""

import pytest

from tests.api.conftest import CENTRE, listed_ids
from tests.factories import TreeFactory

TREES = "/api/v1/trees/"


@pytest.fixture
def twenty_three_trees(db):
    # Ids with gaps, created out of order: the cursor must follow tree_id, not insertion.
    ids = [7 * n + 3 for n in range(23)]
    for tree_id in reversed(ids):
        TreeFactory(tree_id=tree_id)
    return ids


def walk(api_client, url, params=None, link="next"):
    """Follow `link` from `url` to the end; the pages' ids in the order they came."""
    pages = []
    response = api_client.get(url, params)
    while True:
        pages.append(listed_ids(response))
        url = response.json()[link]
        if url is None:
            return pages
        response = api_client.get(url)


@pytest.mark.parametrize("page_size", [1, 5, 22, 23, 1000])
def test_paging_forwards_yields_every_tree_once(api_client, twenty_three_trees, page_size):
    pages = walk(api_client, TREES, {"page_size": page_size})
    assert [tree_id for page in pages for tree_id in page] == twenty_three_trees
    assert all(len(page) == page_size for page in pages[:-1])


def test_paging_backwards_from_the_last_page_yields_every_tree_once(
    api_client, twenty_three_trees
):
    # (With data, the test client ignores a URL's own query, so links are followed bare.)
    response = api_client.get(TREES, {"page_size": 5})
    while (next_url := response.json()["next"]) is not None:
        response = api_client.get(next_url)
    last_page = response.wsgi_request.get_full_path()
    pages = walk(api_client, last_page, link="previous")
    assert sorted(tree_id for page in pages for tree_id in page) == twenty_three_trees
    assert len(pages) == 5


def test_descending_order_pages_through_every_tree(api_client, twenty_three_trees):
    pages = walk(api_client, TREES, {"page_size": 4, "ordering": "-tree_id"})
    assert [tree_id for page in pages for tree_id in page] == twenty_three_trees[::-1]


def test_links_keep_the_filters(api_client, twenty_three_trees):
    TreeFactory(tree_id=1, borough="Bronx")
    TreeFactory(tree_id=2, borough="Bronx")
    first = api_client.get(TREES, {"borough": "Bronx", "page_size": 1}).json()
    assert "borough=Bronx" in first["next"]
    assert listed_ids(api_client.get(first["next"])) == [2]


def test_distance_order_pages_through_ties_once(api_client, db):
    # Seven trees at one point (equal distances) and four further out: DRF tells tied
    # positions apart by offset, which must neither skip nor repeat a tree.
    lat, lon = CENTRE
    for tree_id in range(1, 8):
        TreeFactory(tree_id=tree_id, latitude=lat + 0.0001, longitude=lon)
    for tree_id, step in zip(range(8, 12), range(2, 6), strict=True):
        TreeFactory(tree_id=tree_id, latitude=lat + 0.0001 * step, longitude=lon)
    pages = walk(
        api_client,
        TREES,
        {"near": f"{lat},{lon}", "radius": "100", "ordering": "distance", "page_size": 3},
    )
    seen = [tree_id for page in pages for tree_id in page]
    assert sorted(seen) == list(range(1, 12))
    assert seen[7:] == [8, 9, 10, 11]


def test_default_page_size_comes_from_settings(api_client, twenty_three_trees, settings):
    settings.API_PAGE_SIZE = 10
    assert len(listed_ids(api_client.get(TREES))) == 10


def test_page_size_up_to_the_maximum_is_accepted(api_client, twenty_three_trees):
    assert len(listed_ids(api_client.get(TREES, {"page_size": "1000"}))) == 23

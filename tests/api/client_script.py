"""A consumer of the API through a client generated from its schema, as someone else would write.

tests/api/test_generated_client.py generates `nyc_trees_client` with openapi-python-client,
type-checks this script and the package with mypy --strict, runs it against a live server
and compares what it prints (one JSON object) with the database. Only the generated package
and the standard library: whatever a call returns must be usable as typed, no casts, no
dicts read by hand.

Usage: python client_script.py BASE_URL
"""

import json
import sys
from urllib.parse import parse_qs, urlsplit

from nyc_trees_client import Client
from nyc_trees_client.api.groups import groups_list
from nyc_trees_client.api.species import species_list, species_retrieve
from nyc_trees_client.api.stats import stats_list
from nyc_trees_client.api.tiles import tiles_trees_retrieve, tiles_trees_tilejson
from nyc_trees_client.api.trees import trees_export_csv_retrieve, trees_list, trees_retrieve
from nyc_trees_client.models import (
    PaginatedTreeList,
    Species,
    TileJSON,
    TreeDetail,
    TreeFeatureCollection,
    TreeGroups,
    TreesListFormat,
    TreeStats,
)
from nyc_trees_client.types import File, Unset

PAGE_SIZE = 7


def known[T](value: T | Unset) -> T:
    """A key the schema leaves optional (`fields=` may leave any out) but we did not."""
    assert not isinstance(value, Unset)
    return value


def cursor_of(link: str | Unset | None) -> str | None:
    """The `cursor` parameter of a `next` link: what the generated call takes."""
    if not isinstance(link, str):
        return None
    return parse_qs(urlsplit(link).query)["cursor"][0]


def three_pages(client: Client) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    for _ in range(3):
        if cursor is None:
            page = trees_list.sync(client=client, page_size=PAGE_SIZE)
        else:
            page = trees_list.sync(client=client, page_size=PAGE_SIZE, cursor=cursor)
        assert isinstance(page, PaginatedTreeList), page
        pages.append([known(tree.tree_id) for tree in page.results])
        cursor = cursor_of(page.next_)
        assert cursor is not None, "a census of more than three pages has a next page"
    return pages


def main(base_url: str) -> dict[str, object]:
    client = Client(base_url=base_url, raise_on_unexpected_status=True)
    report: dict[str, object] = {"pages": three_pages(client)}

    first = trees_list.sync(client=client, page_size=PAGE_SIZE)
    assert isinstance(first, PaginatedTreeList), first
    one = first.results[0]
    detail = trees_retrieve.sync(known(one.tree_id), client=client)
    assert isinstance(detail, TreeDetail), detail
    species = known(detail.species)
    report["detail"] = {
        "tree_id": known(detail.tree_id),
        "borough": known(detail.borough).value,
        "latitude": known(detail.latitude),
        "longitude": known(detail.longitude),
        "species": None if species is None else species.latin_name,
    }

    features = trees_list.sync(client=client, page_size=PAGE_SIZE, format_=TreesListFormat.GEOJSON)
    assert isinstance(features, TreeFeatureCollection), features
    report["geojson"] = [
        {"id": feature.id, "coordinates": feature.geometry.coordinates}
        for feature in features.features
    ]
    report["geojson_next"] = cursor_of(features.next_) is not None

    stats = stats_list.sync(client=client)
    assert isinstance(stats, TreeStats), stats
    report["stats"] = {
        "total": stats.total,
        "by_borough": {count.value.value: count.count for count in stats.by_borough},
    }

    groups = groups_list.sync(client=client, by="borough")
    assert isinstance(groups, TreeGroups), groups
    report["groups"] = {
        "total": groups.total,
        "counts": {
            ("" if isinstance(group.borough, Unset) else group.borough.value): group.count
            for group in groups.groups
        },
    }

    every_species = species_list.sync(client=client)
    assert isinstance(every_species, list), every_species
    chosen = max(every_species, key=lambda species: species.tree_count)
    one_species = species_retrieve.sync(chosen.id, client=client)  # an integer id
    assert isinstance(one_species, Species), one_species
    report["species"] = {"id": one_species.id, "tree_count": one_species.tree_count}

    csv = trees_export_csv_retrieve.sync(client=client)
    assert isinstance(csv, str), csv
    report["export_lines"] = len(csv.splitlines())

    tilejson = tiles_trees_tilejson.sync(client=client)
    assert isinstance(tilejson, TileJSON), tilejson
    world = tiles_trees_retrieve.sync(0, 0, 0, client=client)  # z/x/y: every tree
    assert isinstance(world, File), world
    report["tiles"] = {"template": tilejson.tiles[0], "world_bytes": len(world.payload.read())}
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))

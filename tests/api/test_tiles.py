"""Vector tiles (/tiles/trees/{z}/{x}/{y}.mvt) and their TileJSON, decoded and read back.

The census fixture's trees 101-104 stand 0-600 m north of CENTRE in Queens, 105 on Staten
Island, 106 in the Bronx. Tiles are named by the usual XYZ formula (tile_of), so a test says
which trees a tile holds, not which numbers it happens to have.
"""

import math

import mapbox_vector_tile
import pytest
from django.db import transaction

from tests.api.conftest import CENTRE, assert_bad_parameter
from trees.cache import bump_data_version
from trees.models import Tree

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(latitude: float, longitude: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((longitude + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(latitude))) / math.pi) / 2 * n)
    return z, x, y


def tile_url(z: int, x: int, y: int) -> str:
    return f"/tiles/trees/{z}/{x}/{y}.mvt"


# z16: trees 101 and 102 (100 m apart); z14: 101-104; z10: 101-105 (Staten Island too).
Z16 = tile_url(*tile_of(*CENTRE, 16))
Z14 = tile_url(*tile_of(*CENTRE, 14))
Z10 = tile_url(*tile_of(*CENTRE, 10))


def features(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == MVT
    layers = mapbox_vector_tile.decode(response.content)
    assert set(layers) == {"trees"}
    assert layers["trees"]["extent"] == 4096
    return layers["trees"]["features"]


def feature_ids(response) -> list[int]:
    return sorted(feature["id"] for feature in features(response))


def test_a_tree_in_the_tile_is_a_point_with_its_attributes(api_client, census):
    by_id = {feature["id"]: feature for feature in features(api_client.get(Z16))}
    maple = by_id[101]
    assert maple["geometry"]["type"] == "Point"
    assert maple["properties"] == {
        "tree_id": 101,
        "species": "red maple",
        "health": "Good",
        "status": "Alive",
        "dbh": 3,
    }


def test_a_tree_outside_the_tile_is_not_in_it(api_client, census):
    assert feature_ids(api_client.get(Z16)) == [101, 102]


def test_a_dead_tree_has_empty_species_and_health(api_client, census):
    by_id = {feature["id"]: feature for feature in features(api_client.get(Z14))}
    assert by_id[104]["properties"] == {
        "tree_id": 104,
        "species": "",
        "health": "",
        "status": "Dead",
        "dbh": 8,
    }


def test_the_point_is_where_the_tree_is(api_client, census):
    # Tree 101 is at CENTRE: its tile coordinates are its position's fraction of the tile.
    z, x, y = tile_of(*CENTRE, 16)
    (maple,) = [f for f in features(api_client.get(tile_url(z, x, y))) if f["id"] == 101]
    n = 2**z
    fx = (CENTRE[1] + 180) / 360 * n - x
    fy = (1 - math.asinh(math.tan(math.radians(CENTRE[0]))) / math.pi) / 2 * n - y
    # mapbox_vector_tile decodes with y up (its default), hence 1 - fy.
    assert maple["geometry"]["coordinates"] == pytest.approx([fx * 4096, (1 - fy) * 4096], abs=1)


def test_every_tree_in_the_tile_at_zoom_14(api_client, census):
    assert feature_ids(api_client.get(Z14)) == [101, 102, 103, 104]


def test_a_filter_selects_the_features(api_client, census):
    assert feature_ids(api_client.get(Z14, {"borough": "Brooklyn"})) == [102]


def test_repeated_values_mean_any_of_them(api_client, census):
    response = api_client.get(f"{Z14}?health=Good&health=Poor")
    assert feature_ids(response) == [101, 103]


def test_filters_combine_as_in_the_tree_list(api_client, census):
    response = api_client.get(Z14, {"status": "Alive", "dbh_min": 10})
    listed = api_client.get("/api/v1/trees/", {"status": "Alive", "dbh_min": 10}).json()
    in_tile = {101, 102, 103, 104}
    assert feature_ids(response) == sorted(
        tree["tree_id"] for tree in listed["results"] if tree["tree_id"] in in_tile
    )
    assert feature_ids(response) == [102, 103]


def test_below_zoom_14_cells_count_every_tree_in_the_tile(api_client, census):
    cells = features(api_client.get(Z10))
    assert all(
        set(cell["properties"]) == {"count", "good", "fair", "poor", "dbh"} for cell in cells
    )
    assert all("id" not in cell or cell["id"] == 0 for cell in cells)  # cells have no tree id
    total = {
        name: sum(cell["properties"][name] for cell in cells)
        for name in ("count", "good", "fair", "poor")
    }
    # 101 Good, 102 Fair, 103 Poor, 104 Dead and 105 a stump (no health); 106 lies north.
    assert total == {"count": 5, "good": 1, "fair": 1, "poor": 1}


def test_a_cell_has_the_mean_diameter_of_its_trees(api_client, census):
    # At z10 a cell is ~300 m: trees 101 (3 in) and 102 (12 in), 100 m apart, share one.
    cells = features(api_client.get(Z10, {"zipcode": ["11375", "11209"]}))
    assert [cell["properties"] for cell in cells] == [
        {"count": 2, "good": 1, "fair": 1, "poor": 0, "dbh": 8}
    ]


def test_an_empty_tile_is_a_204_without_body(api_client, census):
    response = api_client.get(tile_url(10, 0, 0))
    assert response.status_code == 204
    assert response.content == b""


def test_a_filter_matching_nothing_in_the_tile_is_a_204(api_client, census):
    assert api_client.get(Z14, {"borough": "Staten Island"}).status_code == 204


def test_a_filter_django_knows_matches_nothing_is_a_204(api_client, census):
    # Every filter at once, as the schema fuzzer sent them: the queryset is .none().
    query = "species=0&species_id=1&near=90,180&bbox=180,90,180,90&borough=Manhattan"
    assert api_client.get(f"{tile_url(0, 0, 0)}?{query}").status_code == 204


@pytest.mark.parametrize("zxy", ["3/8/0", "3/0/8", "23/0/0", "-1/0/0", "2/-1/0", "2/0/-1"])
def test_a_tile_that_does_not_exist_is_a_json_400(api_client, census, zxy):
    body = assert_bad_parameter(api_client.get(f"/tiles/trees/{zxy}.mvt"), "tile")
    assert zxy in body["errors"]["tile"][0]


def test_a_tile_path_that_is_not_numbers_is_a_json_404(api_client, census):
    response = api_client.get("/tiles/trees/a/0/0.mvt")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "detail": "Not found."}


def test_a_bad_filter_is_a_json_400(api_client, census):
    assert_bad_parameter(api_client.get(Z14, {"borough": "Narnia"}), "borough")


def test_an_unknown_parameter_is_a_json_400(api_client, census):
    assert_bad_parameter(api_client.get(Z14, {"borogh": "Queens"}), "borogh")


def test_a_repeated_tile_is_served_from_the_cache(api_client, census, django_assert_num_queries):
    first = api_client.get(Z14)
    assert first["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        second = api_client.get(Z14)
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content
    assert second["Content-Type"] == MVT


def test_a_matching_etag_is_a_304(api_client, census, django_assert_num_queries):
    first = api_client.get(Z14)
    assert first["Cache-Control"] == "public, max-age=0, must-revalidate"
    with django_assert_num_queries(0):
        response = api_client.get(Z14, HTTP_IF_NONE_MATCH=first["ETag"])
    assert response.status_code == 304
    assert response.content == b""


def test_a_large_tile_is_gzipped_for_clients_that_accept_it(api_client, db):
    from tests.factories import TreeFactory

    for n in range(100):  # enough features to pass the gzip threshold
        TreeFactory(latitude=CENTRE[0] + n * 1e-5, longitude=CENTRE[1])
    response = api_client.get(Z16, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert response["ETag"].endswith('-gzip"')


@pytest.mark.django_db(transaction=True)  # the new version is published on commit
def test_a_data_change_is_in_the_next_tile(api_client, census):
    before = features(api_client.get(Z16))
    assert api_client.get(Z16)["X-Cache"] == "HIT"
    with transaction.atomic():  # what sync_trees does with each batch
        Tree.objects.filter(tree_id=101).update(health="Poor")
        bump_data_version()
    after = api_client.get(Z16)
    assert after["X-Cache"] == "MISS"
    health = {feature["id"]: feature["properties"]["health"] for feature in features(after)}
    assert health == {101: "Poor", 102: "Fair"}
    assert {feature["id"]: feature["properties"]["health"] for feature in before}[101] == "Good"


def test_tiles_carry_cors_headers(api_client, census):
    response = api_client.get(Z14, HTTP_ORIGIN="https://map.example")
    assert response["Access-Control-Allow-Origin"] == "*"


def test_tilejson_describes_the_tiles(api_client, census):
    response = api_client.get("/tiles/trees.json")
    assert response.status_code == 200
    body = response.json()
    assert body["tilejson"] == "3.0.0"
    assert body["tiles"] == ["http://testserver/tiles/trees/{z}/{x}/{y}.mvt"]
    assert (body["minzoom"], body["maxzoom"]) == (0, 16)
    west, south, east, north = body["bounds"]
    assert west < CENTRE[1] < east
    assert south < CENTRE[0] < north
    (layer,) = body["vector_layers"]
    assert layer["id"] == "trees"
    assert {"tree_id", "species", "health", "status", "dbh", "count", "good"} <= set(
        layer["fields"]
    )
    assert "Tree Census" in body["attribution"]
    assert body["name"] == "NYC street trees"


def test_tilejson_tiles_carry_the_filters(api_client, census):
    body = api_client.get("/tiles/trees.json?borough=Queens&health=Good&health=Poor").json()
    (template,) = body["tiles"]
    assert template == (
        "http://testserver/tiles/trees/{z}/{x}/{y}.mvt?borough=Queens&health=Good&health=Poor"
    )
    z, x, y = tile_of(*CENTRE, 14)
    filled = template.removeprefix("http://testserver").format(z=z, x=x, y=y)
    assert feature_ids(api_client.get(filled)) == [101]  # Queens, Good or Poor


def test_tilejson_rejects_a_bad_filter(api_client, census):
    assert_bad_parameter(api_client.get("/tiles/trees.json", {"health": "Great"}), "health")

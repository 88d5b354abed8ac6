import datetime
from dataclasses import replace

import pytest
from django.db import connection

from tests.factories import TreeFactory, soda_row
from tests.pages import csv_page, json_page
from trees.columns import map_headers
from trees.loader import Loader
from trees.models import Species, Tree

pytestmark = pytest.mark.django_db


def load(*pages, track_seen=False):
    loader = Loader(track_seen=track_seen)
    loader.start()
    results = [loader.load(page, map_headers(page.fields)) for page in pages]
    return loader, results


def reasons(result) -> list[str]:
    return [r["reason"] for r in result.rejections]


def xmin(tree_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text::bigint FROM trees_tree WHERE tree_id = %s", [tree_id])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("make_page", [csv_page, json_page], ids=["csv", "json"])
def test_a_clean_row_is_stored_with_typed_values(make_page):
    _, [result] = load(make_page([soda_row()]))
    assert (result.fetched, result.inserted, result.rejected) == (1, 1, 0)
    tree = Tree.objects.select_related("species").get()
    assert tree.tree_id == 180683
    assert tree.block_id == 348711
    assert tree.surveyed_on == datetime.date(2015, 8, 27)
    assert (tree.tree_dbh, tree.stump_diam) == (3, 0)
    assert (tree.curb_loc, tree.status, tree.health) == ("OnCurb", "Alive", "Fair")
    assert (tree.species.latin_name, tree.species.common_name) == ("Acer rubrum", "red maple")
    assert (tree.steward, tree.guards, tree.sidewalk) == ("None", "None", "NoDamage")
    assert tree.user_type == "TreesCount Staff"
    assert tree.problems == "None"
    assert tree.root_stone is False
    assert (tree.address, tree.zipcode, tree.zip_city) == (
        "108-005 70 AVENUE",
        "11375",
        "Forest Hills",
    )
    assert (tree.community_board, tree.borocode, tree.borough) == (406, 4, "Queens")
    assert (tree.cncldist, tree.st_assem, tree.st_senate) == (29, 28, 16)
    assert (tree.nta, tree.nta_name, tree.boro_ct, tree.state) == (
        "QN17",
        "Forest Hills",
        4073900,
        "New York",
    )
    assert (tree.latitude, tree.longitude) == (40.72309177, -73.84421522)
    assert (tree.x_sp, tree.y_sp) == (1027431.148, 202756.7687)
    assert (tree.council_district, tree.census_tract, tree.bin) == (29, "739", 4052307)
    assert tree.bbl == 4022210001
    assert tree.socrata_id == "row-6nmm_trd2~z4v7"
    assert tree.socrata_updated_at == datetime.datetime(
        2023, 10, 9, 10, 2, 32, 402000, tzinfo=datetime.UTC
    )
    assert result.newest == tree.socrata_updated_at


@pytest.mark.parametrize("make_page", [csv_page, json_page], ids=["csv", "json"])
def test_a_dead_tree_without_species_or_health_is_stored_empty(make_page):
    dead = soda_row(
        status="Dead",
        health=None,
        spc_latin=None,
        spc_common=None,
        steward=None,
        guards=None,
        sidewalk=None,
    )
    load(make_page([dead]))
    tree = Tree.objects.get()
    assert tree.status == "Dead"
    assert tree.species is None
    assert (tree.health, tree.steward, tree.guards, tree.sidewalk) == ("", "", "", "")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tree_id": None}, "tree_id is missing"),
        ({"tree_id": "abc"}, "tree_id is not an integer: 'abc'"),
        ({"tree_dbh": "abc"}, "tree_dbh is not a whole number below 10000: 'abc'"),
        ({"tree_dbh": "99999"}, "tree_dbh is not a whole number below 10000: '99999'"),
        ({"tree_dbh": "-3"}, "tree_dbh is negative"),
        ({"status": "Sleeping"}, "status is not one of Alive, Dead, Stump: 'Sleeping'"),
        ({"status": None}, "status is missing"),
        ({"health": "Great"}, "health is not one of Good, Fair, Poor: 'Great'"),
        ({"root_stone": "Maybe"}, "root_stone is not Yes or No: 'Maybe'"),
        ({"created_at": "2015-02-30T00:00:00.000"}, "surveyed_on is not a date"),
        ({":updated_at": "yesterday"}, "socrata_updated_at is not a timestamp: 'yesterday'"),
        ({"latitude": "0", "longitude": "0"}, "coordinates outside New York: 0, 0"),
        ({"latitude": "forty"}, "latitude is not a number: 'forty'"),
        ({"latitude": None}, "latitude is missing"),
        ({"x_sp": "NaN"}, "x_sp is not a finite number"),
        ({"bbl": "123456789012345678901"}, "bbl is not an integer"),
        ({"zipcode": "113750"}, "zipcode is longer than 5 characters"),
        ({"boroname": None, "borocode": None}, "borough is missing"),
        ({"boroname": "Hoboken"}, "borough is not one of"),
    ],
)
@pytest.mark.parametrize("make_page", [csv_page, json_page], ids=["csv", "json"])
def test_a_bad_row_is_rejected_with_its_reason_and_the_rest_land(make_page, overrides, reason):
    rows = [soda_row(tree_id="1"), soda_row(**overrides), soda_row(tree_id="3")]
    _, [result] = load(make_page(rows))
    assert result.rejected == 1
    assert result.inserted == 2
    assert len(result.rejections) == 1
    assert result.rejections[0]["row"] == 2
    assert reason in result.rejections[0]["reason"]
    assert set(Tree.objects.values_list("tree_id", flat=True)) == {1, 3}


def test_several_broken_rules_are_all_named():
    _, [result] = load(csv_page([soda_row(tree_dbh="x", status="Sleeping")]))
    assert "tree_dbh is not" in result.rejections[0]["reason"]
    assert "status is not one of" in result.rejections[0]["reason"]


def test_closed_vocabularies_are_matched_without_regard_to_case():
    load(csv_page([soda_row(status="alive", health="GOOD", curb_loc="oncurb")]))
    tree = Tree.objects.get()
    assert (tree.status, tree.health, tree.curb_loc) == ("Alive", "Good", "OnCurb")


def test_borough_comes_from_the_code_when_the_name_is_missing():
    load(csv_page([soda_row(boroname=None, borocode="2")]))
    assert Tree.objects.get().borough == "Bronx"


@pytest.mark.parametrize("make_page", [csv_page, json_page], ids=["csv", "json"])
def test_either_name_of_a_disputed_column_is_accepted(make_page):
    row = soda_row()
    row["postcode"] = row.pop("zipcode")
    row["borough"] = row.pop("boroname")
    row["community_board"] = row.pop("cb_num")
    load(make_page([row]))
    tree = Tree.objects.get()
    assert (tree.zipcode, tree.borough, tree.community_board) == ("11375", "Queens", 406)


def test_unknown_columns_are_ignored():
    _, [result] = load(csv_page([soda_row(shiny_new_column="42", another="x")]))
    assert result.inserted == 1
    assert map_headers(("tree_id", "shiny_new_column")).unknown == ("shiny_new_column",)


def test_bulk_export_headers_and_us_dates_are_read():
    row = soda_row(created_at="08/27/2015")
    for api, display in [
        ("zipcode", "postcode"),
        ("cb_num", "community board"),
        ("boroname", "borough"),
        ("council_district", "council district"),
        ("census_tract", "census tract"),
    ]:
        row[display] = row.pop(api)
    load(csv_page([row]))
    tree = Tree.objects.get()
    assert tree.surveyed_on == datetime.date(2015, 8, 27)
    assert (tree.zipcode, tree.community_board, tree.council_district) == ("11375", 406, 29)


def test_a_later_row_with_the_same_tree_id_wins_and_is_no_rejection():
    _, [result] = load(csv_page([soda_row(tree_dbh="3"), soda_row(tree_dbh="4")]))
    assert (result.inserted, result.rejected, result.superseded) == (1, 0, 1)
    assert result.unchanged == 0
    assert Tree.objects.get().tree_dbh == 4


def test_of_one_tree_twice_the_newest_updated_at_wins_whatever_its_line():
    newer = soda_row(tree_dbh="3", **{":updated_at": "2024-05-01T10:00:00.000Z"})
    older = soda_row(tree_dbh="4", **{":updated_at": "2024-04-01T10:00:00.000Z"})
    _, [result] = load(csv_page([newer, older]))
    assert (result.inserted, result.rejected, result.superseded) == (1, 0, 1)
    assert Tree.objects.get().tree_dbh == 3


def test_loading_the_same_page_again_rewrites_nothing():
    page = csv_page([soda_row(tree_id="1"), soda_row(tree_id="2")])
    loader, _ = load(page)
    before = xmin(1)
    second = loader.load(page, map_headers(page.fields))
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    assert not second.changed
    assert xmin(1) == before


def test_a_changed_row_is_updated():
    loader, _ = load(csv_page([soda_row(tree_id="1"), soda_row(tree_id="2")]))
    changed = csv_page([soda_row(tree_id="1", health="Poor"), soda_row(tree_id="2")])
    result = loader.load(changed, map_headers(changed.fields))
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    assert Tree.objects.get(tree_id=1).health == "Poor"


def test_species_are_shared_and_their_common_name_follows_the_source():
    loader, _ = load(csv_page([soda_row(tree_id="1"), soda_row(tree_id="2")]))
    assert Species.objects.count() == 1
    renamed = csv_page([soda_row(tree_id="1", spc_common="red maple tree")])
    result = loader.load(renamed, map_headers(renamed.fields))
    assert result.species_changed == 1
    assert Species.objects.get().common_name == "red maple tree"


def test_delete_missing_keeps_seen_and_rejected_trees():
    TreeFactory(tree_id=7)  # gone from the source
    TreeFactory(tree_id=8)  # still there, but its row is malformed this time
    loader, _ = load(
        csv_page([soda_row(tree_id="1"), soda_row(tree_id="8", tree_dbh="x")]), track_seen=True
    )
    assert loader.delete_missing() == 1
    assert set(Tree.objects.values_list("tree_id", flat=True)) == {1, 8}


def test_a_first_load_takes_a_tree_repeated_on_a_later_page_from_that_page():
    loader = Loader(track_seen=False, into_empty_table=True)
    loader.start()
    first = csv_page([soda_row(tree_id="1"), soda_row(tree_id="2")])
    again = csv_page([soda_row(tree_id="2", tree_dbh="9"), soda_row(tree_id="3")])
    results = [loader.load(page, map_headers(page.fields)) for page in (first, again)]
    assert [(r.inserted, r.updated) for r in results] == [(2, 0), (1, 1)]
    assert Tree.objects.get(tree_id=2).tree_dbh == 9


def with_bytes(page, marker: str, raw: bytes):
    """The page with the text `marker` replaced by raw bytes no Postgres text can hold."""
    return replace(page, body=page.body.replace(marker.encode(), raw))


@pytest.mark.parametrize(
    ("make_page", "raw", "reason"),
    [
        (csv_page, b"\x00", "address holds a NUL byte"),
        (csv_page, b"\xff", "address is not valid UTF-8"),
        (json_page, b"\\u0000", "address holds a NUL byte"),
        (json_page, b"\xff", "address is not valid UTF-8"),
    ],
    ids=["csv-nul", "csv-0xff", "json-u0000", "json-0xff"],
)
def test_a_row_with_bytes_postgres_cannot_hold_is_rejected_and_the_rest_land(
    make_page, raw, reason
):
    rows = [soda_row(tree_id=str(n)) for n in range(1, 6)]
    rows[3]["address"] = "12 BAD@BYTE STREET"
    page = with_bytes(make_page(rows, offset=100), "@", raw)
    _, [result] = load(page)
    assert (result.fetched, result.inserted, result.rejected) == (5, 4, 1)
    assert result.rejections == [{"row": 104, "tree_id": "4", "reason": reason}]
    assert set(Tree.objects.values_list("tree_id", flat=True)) == {1, 2, 3, 5}


def test_a_json_row_with_a_nul_in_a_field_name_is_rejected_and_the_rest_land():
    """Found by the red team: `{"bad\\u0000key": "x"}` in one row failed the whole run
    ("unsupported Unicode escape sequence")."""
    rows = [soda_row(tree_id=str(n)) for n in range(1, 4)]
    rows[1]["extra@name"] = "x"
    page = with_bytes(json_page(rows), "@", b"\\u0000")
    _, [result] = load(page)
    assert (result.fetched, result.inserted, result.rejected) == (3, 2, 1)
    assert result.rejections == [
        {"row": 2, "tree_id": "2", "reason": "a field name holds a NUL byte"}
    ]


def test_rows_after_an_unreadable_one_keep_their_numbers_in_rejections():
    rows = [soda_row(tree_id="1", address="A\x01B"), soda_row(tree_id="2"), soda_row(tree_id="x")]
    page = with_bytes(csv_page(rows), "\x01", b"\x00")
    _, [result] = load(page)
    assert [(r["row"], r["tree_id"]) for r in result.rejections] == [(1, "1"), (3, "x")]
    assert "holds a NUL byte" in result.rejections[0]["reason"]
    assert "tree_id is not an integer" in result.rejections[1]["reason"]


def test_a_full_run_keeps_a_tree_whose_row_was_unreadable_this_time():
    TreeFactory(tree_id=8)
    page = with_bytes(
        csv_page([soda_row(tree_id="1"), soda_row(tree_id="8", address="@")]), "@", b"\xff"
    )
    loader, [result] = load(page, track_seen=True)
    assert result.rejected == 1
    assert loader.delete_missing() == 0
    assert set(Tree.objects.values_list("tree_id", flat=True)) == {1, 8}

"""Finding the records of a page that Postgres cannot take (trees/records.py)."""

from dataclasses import replace

import pytest

from tests.factories import soda_row
from tests.pages import csv_page, json_page
from trees import records


@pytest.mark.parametrize("make_page", [csv_page, json_page], ids=["csv", "json"])
def test_a_clean_page_is_handed_back_as_it_is(make_page):
    page = make_page([soda_row(tree_id="1"), soda_row(tree_id="2", address="Ünïcode 🌳")])
    assert records.neutralise(page, key="tree_id") == (page, [])


def test_a_valid_surrogate_pair_escape_in_json_is_no_bad_record():
    page = json_page([soda_row(address="tree 🌳")])  # json.dumps writes "\ud83c\udf33"
    assert b"\\ud83c" in page.body
    assert records.neutralise(page, key="tree_id") == (page, [])


def test_records_split_only_at_newlines_outside_quotes():
    body = b'a,b\n1,"two\nlines"\r\n3,"say ""hi"""\n'
    assert records.split_records(body) == [b"a,b\n", b'1,"two\nlines"\r\n', b'3,"say ""hi"""\n']


def test_a_bad_record_becomes_a_placeholder_keeping_its_place_and_tree_id():
    page = csv_page([soda_row(tree_id="1"), soda_row(tree_id="2", address="@")])
    page = replace(page, body=page.body.replace(b"@", b"\x00"))
    clean, [bad] = records.neutralise(page, key="tree_id")
    assert bad == records.BadRecord(2, "2", "address holds a NUL byte")
    _, first, placeholder = records.split_records(clean.body)
    assert first == records.split_records(page.body)[1]
    assert placeholder.decode().split(",")[page.fields.index("tree_id")] == "2"
    assert set(placeholder.decode().strip().split(",")) == {"", "2"}

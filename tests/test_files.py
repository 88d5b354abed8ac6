"""Pages from a file (trees/files.py); the command's view of it is in commands/test_sync_trees."""

import os

import pytest

from tests.factories import soda_row
from tests.fakes.soda import write_bulk_csv
from trees import files
from trees.exceptions import SyncError
from trees.files import FileSource


def pages(path, page_size=10_000):
    source = FileSource(path)
    return list(
        source.pages(
            where=None, order=":id", page_size=page_size, max_rows=None, expected_total=None
        )
    )


def test_a_page_holds_at_most_max_page_bytes_whatever_the_page_size(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_PAGE_BYTES", 4096)
    path = tmp_path / "trees.csv"
    write_bulk_csv(path, [soda_row(tree_id=str(n)) for n in range(1, 101)])
    cut = pages(path)
    assert sum(page.row_count for page in cut) == 100
    assert len(cut) >= 5
    assert all(len(page.body) < 4096 + 2 * 1024 for page in cut)  # header + one more row
    assert [page.offset for page in cut] == [
        sum(p.row_count for p in cut[:i]) for i in range(len(cut))
    ]


def test_a_json_page_keeps_each_element_as_the_file_spells_it(tmp_path):
    path = tmp_path / "trees.json"
    path.write_bytes(
        b'[{"tree_id": "1", "address": "A\\u0000B"},\n {"tree_id": "2", "address": "\xff"}]'
    )
    [page] = pages(path)
    assert (
        page.body
        == b'[{"tree_id": "1", "address": "A\\u0000B"},\n{"tree_id": "2", "address": "\xff"}]'
    )
    assert page.fields == ("tree_id", "address")


def test_an_unusable_file_is_refused_when_the_run_reads_it_not_before(tmp_path):
    path = tmp_path / "trees.json"
    path.write_text("not json")
    source = FileSource(path)  # the run exists by the time pages are asked for: it records why
    with pytest.raises(SyncError, match="is not a JSON array of rows"):
        pages(path)
    assert source.description == str(path.resolve())


def test_a_directory_is_refused_as_a_directory_not_as_a_missing_file(tmp_path):
    with pytest.raises(SyncError, match="is a directory"):
        FileSource(tmp_path)


def test_a_fifo_is_refused_as_not_a_regular_file(tmp_path):
    fifo = tmp_path / "trees.csv"
    os.mkfifo(fifo)
    with pytest.raises(SyncError, match="not a regular file"):
        FileSource(fifo)


def test_a_file_that_goes_away_before_it_is_read_is_one_clear_error(tmp_path):
    path = tmp_path / "trees.csv"
    write_bulk_csv(path, [soda_row(tree_id="1")])
    source = FileSource(path)
    path.unlink()
    with pytest.raises(SyncError, match=r"Cannot read .*: No such file"):
        list(
            source.pages(where=None, order=":id", page_size=10, max_rows=None, expected_total=None)
        )

"""The fake SODA server's own contract: what tests of the client and the sync rely on."""

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.census import BOROUGHS, FIELDS, LIVING_ONLY, SPECIES
from tests.fakes.dataset import format_timestamp_ms, parse_timestamp_us
from tests.fakes.soda import DEFAULT_DATASET, DISPUTED_NAMES, FakeSodaServer

REPO = Path(__file__).resolve().parents[2]
NEWEST_BASE_UPDATE = "2023-10-09T10:02:32.402Z"


def get(server: FakeSodaServer, fmt: str = "json", **params) -> requests.Response:
    return requests.get(server.resource_url(fmt), params=params, timeout=10)


def get_json(server: FakeSodaServer, **params) -> list[dict[str, str]]:
    response = get(server, **params)
    assert response.status_code == 200, response.text
    return response.json()


def all_rows(server: FakeSodaServer, **params) -> list[dict[str, str]]:
    return get_json(server, **{"$select": ":*,*", "$order": ":id", "$limit": 50000, **params})


# --- generated data ------------------------------------------------------------------------


def test_rows_depend_only_on_the_seed(soda_server_factory):
    first, again, other = (soda_server_factory(rows=50, seed=seed).rows() for seed in (1, 1, 2))

    assert first == again
    assert first != other


def test_rows_have_the_45_fields_in_order_and_unique_keys(soda_server):
    response = get(soda_server, **{"$select": ":*,*", "$limit": 1})
    rows = soda_server.rows()

    assert json.loads(response.headers["X-SODA2-Fields"]) == [
        ":id", ":created_at", ":updated_at", ":version", *FIELDS
    ]  # fmt: skip
    assert len(FIELDS) == 45
    assert len({row["tree_id"] for row in rows}) == len({row[":id"] for row in rows}) == 2500
    assert all(re.fullmatch(r"row-\w{4}_\w{4}~\w{4}", row[":id"]) for row in rows)
    tree_ids = sorted(int(row["tree_id"]) for row in rows)
    assert tree_ids[-1] - tree_ids[0] + 1 > len(tree_ids)  # unique, not contiguous


def test_values_stay_within_census_domains(soda_server):
    rows = soda_server.rows()
    boroughs = {b.name: b for b in BOROUGHS}
    statuses = [row["status"] for row in rows]

    assert set(statuses) == {"Alive", "Dead", "Stump"}
    assert statuses.count("Alive") / len(rows) > 0.94
    for row in rows:
        borough = boroughs[row["boroname"]]
        assert row["borocode"] == str(borough.code)
        assert row["cb_num"][0] == row["boro_ct"][0] == str(borough.code)
        assert borough.lat[0] <= float(row["latitude"]) <= borough.lat[1]
        assert borough.lon[0] <= float(row["longitude"]) <= borough.lon[1]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00\.000", row["created_at"])
        assert "bbl" not in row or re.fullmatch(r"[1-5]\d{9}", row["bbl"])
        assert all(isinstance(value, str) for value in row.values())
        if row["status"] == "Alive":
            assert (row["spc_latin"], row["spc_common"]) in {s[:2] for s in SPECIES}
        else:
            assert not set(LIVING_ONLY) & set(row)
    assert len({row.get("spc_latin") for row in rows}) > 60


# --- paging, counting, filtering, ordering -------------------------------------------------


def test_offset_paging_under_id_order_covers_every_row_once(soda_server):
    ids = []
    for offset in range(0, 3000, 1000):
        page = get_json(soda_server, **{"$select": ":id", "$order": ":id", "$offset": offset})
        ids += [row[":id"] for row in page]

    assert ids == sorted(ids)
    assert len(set(ids)) == 2500


def test_limit_defaults_to_1000(soda_server):
    assert len(get_json(soda_server)) == 1000


def test_a_limit_above_50000_is_refused(soda_server):
    response = get(soda_server, **{"$limit": 50001})

    assert response.status_code == 400
    assert response.json()["message"] == "length must be <= 50000"


@pytest.mark.parametrize(
    ("select", "key"), [("count(*)", "count"), ("count(*) AS total", "total")]
)
def test_count_is_one_object_with_a_string(soda_server, select, key):
    assert get_json(soda_server, **{"$select": select}) == [{key: "2500"}]


@pytest.mark.parametrize(
    "literal",
    [
        "2023-10-09T10:02:32.402Z",
        "2023-10-09T10:02:32.402",
        "2023-10-09T10:02:32.4020",
        "2023-10-09T10:02:33",
        "2023-10-09T06:02:32.402-04:00",
    ],
)
def test_updated_at_is_compared_as_an_instant(soda_server, literal):
    changed = soda_server.update_rows(25)

    rows = get_json(soda_server, **{"$where": f":updated_at > '{literal}'"})

    assert sorted(int(row["tree_id"]) for row in rows) == changed


def test_updated_at_at_or_after_includes_the_boundary(soda_server):
    stamp = soda_server.update_rows(1)  # the new timestamp is the newest
    newest = soda_server.last_updated_at

    assert len(get_json(soda_server, **{"$where": f":updated_at >= '{newest}'"})) == len(stamp)
    assert get_json(soda_server, **{"$where": f":updated_at > '{newest}'"}) == []


def test_where_combines_conditions_with_and(soda_server):
    changed = soda_server.update_rows(40)
    cutoff = changed[20]
    where = f":updated_at > '{NEWEST_BASE_UPDATE}' AND tree_id > {cutoff}"

    rows = get_json(soda_server, **{"$where": where})

    assert sorted(int(row["tree_id"]) for row in rows) == changed[21:]


def test_where_takes_or_and_parentheses(soda_server):
    changed = soda_server.update_rows(10)
    since = f":updated_at > '{NEWEST_BASE_UPDATE}'"
    where = f"(tree_id = {changed[0]} OR tree_id = {changed[1]}) AND {since}"

    rows = get_json(soda_server, **{"$where": where})

    assert sorted(int(row["tree_id"]) for row in rows) == changed[:2]


def test_and_binds_tighter_than_or(soda_server):
    tree_ids = soda_server.tree_ids()
    where = f"tree_id = {tree_ids[0]} OR tree_id = {tree_ids[1]} AND tree_id = {tree_ids[2]}"

    rows = get_json(soda_server, **{"$where": where})

    assert [int(row["tree_id"]) for row in rows] == [tree_ids[0]]


def test_where_takes_in_lists(soda_server):
    tree_ids = soda_server.tree_ids()[5:9]

    rows = get_json(soda_server, **{"$where": f"tree_id in ({', '.join(map(str, tree_ids))})"})

    assert sorted(int(row["tree_id"]) for row in rows) == tree_ids


def test_ids_compare_as_text_in_their_order(soda_server):
    ids = [row[":id"] for row in soda_server.rows()]

    rows = all_rows(soda_server, **{"$where": f":id > '{ids[99]}'"})

    assert [row[":id"] for row in rows] == ids[100:]


def test_a_keyset_on_updated_at_then_id_continues_after_the_cursor(soda_server):
    soda_server.update_rows(30)
    ordered = all_rows(soda_server, **{"$order": ":updated_at,:id"})
    stamp, last = ordered[2009][":updated_at"], ordered[2009][":id"]
    where = f"(:updated_at > '{stamp}' OR (:updated_at = '{stamp}' AND :id > '{last}'))"

    rows = all_rows(soda_server, **{"$where": where, "$order": ":updated_at,:id"})

    assert rows == ordered[2010:]


def test_an_id_bound_that_is_no_keyset_is_still_answered_exactly(soda_server):
    ids = [row[":id"] for row in soda_server.rows()]

    rows = all_rows(soda_server, **{"$where": f":id < '{ids[10]}'"})

    assert [row[":id"] for row in rows] == ids[:10]


def test_max_of_updated_at_is_one_object(soda_server):
    soda_server.update_rows(3)

    rows = get_json(soda_server, **{"$select": "max(:updated_at) AS newest"})

    assert rows == [{"newest": soda_server.last_updated_at}]
    soda_server.republish()
    soda_server.delete_rows(5)
    newest = max(row[":updated_at"] for row in soda_server.rows())
    assert get_json(soda_server, **{"$select": "max(:updated_at) AS newest"}) == [
        {"newest": newest}
    ]
    assert get_json(soda_server, **{"$select": "max(:updated_at)", "$where": "tree_id < 0"}) == [
        {}
    ]


def test_a_page_hook_changes_rows_before_the_nth_page_is_answered(soda_server):
    seen = []
    soda_server.on_page_request(lambda server: seen.append(server.delete_rows(1)), nth=2)
    before = get_json(soda_server, **{"$select": "count(*)"})  # a count is no page
    first = all_rows(soda_server)
    second = all_rows(soda_server)

    assert before == [{"count": "2500"}]
    assert (len(first), len(second), len(seen)) == (2500, 2499, 1)
    assert soda_server.pending_page_hooks == 0


def test_a_fault_offset_counts_from_the_keyset_cursor(soda_server):
    ids = [row[":id"] for row in soda_server.rows()]
    soda_server.fail(500, offset=1000)

    statuses = [
        get(soda_server, **{"$where": f":id > '{ids[after]}'", "$order": ":id"}).status_code
        for after in (499, 999, 998)
    ]

    assert statuses == [200, 500, 200]


def test_tree_id_keyset_order(soda_server):
    rows = get_json(soda_server, **{"$where": "tree_id > 100", "$order": "tree_id", "$limit": 5})

    tree_ids = [int(row["tree_id"]) for row in rows]
    assert tree_ids == sorted(tree_ids)
    assert tree_ids[0] == min(t for t in soda_server.tree_ids() if t > 100)


def test_order_by_updated_at_then_id(soda_server):
    soda_server.update_rows(10)

    rows = all_rows(soda_server, **{"$order": ":updated_at,:id"})

    keys = [(row[":updated_at"], row[":id"]) for row in rows]
    assert keys == sorted(keys)


def test_order_descending(soda_server):
    rows = all_rows(soda_server, **{"$order": "tree_id DESC"})

    tree_ids = [int(row["tree_id"]) for row in rows]
    assert tree_ids == sorted(tree_ids, reverse=True)


def test_field_equality_filter(soda_server):
    rows = get_json(soda_server, boroname="Queens", **{"$limit": 50000})

    assert rows
    assert {row["boroname"] for row in rows} == {"Queens"}


@pytest.mark.parametrize(
    "params",
    [
        {"$where": "tree_id >> 5"},
        {"$where": "upper(status) = 'ALIVE'"},
        {"$group": "status"},
        {"$where": "(tree_id > 5"},
        {"$where": "tree_id > 5 OR"},
        {"$where": "tree_id in 5"},
        {"$where": "tree_id in (5, tree_id)"},
    ],
)
def test_unsupported_queries_are_malformed(soda_server, params):
    response = get(soda_server, **params)

    assert response.status_code == 400
    assert response.json()["code"] == "query.compiler.malformed"


@pytest.mark.parametrize(
    "params", [{"$order": "height"}, {"$select": "tree_id,height"}, {"$where": "height > 3"}]
)
def test_unknown_columns_are_semantic_errors(soda_server, params):
    response = get(soda_server, **params)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "query.soql.no-such-column"


# --- SODA's formats and headers ------------------------------------------------------------


def test_json_leaves_out_nulls_and_csv_leaves_them_empty(soda_server):
    params = {"$select": ":*,*", "$order": ":id", "$limit": 50000}
    json_rows = get_json(soda_server, **params)
    csv_text = get(soda_server, "csv", **params).text
    dead = next(i for i, row in enumerate(json_rows) if row["status"] == "Dead")

    header, *lines = csv_text.splitlines()
    csv_row = dict(zip(next(csv.reader([header])), next(csv.reader([lines[dead]])), strict=True))
    assert "health" not in json_rows[dead]
    assert csv_row["health"] == ""
    assert ",," in lines[dead]  # empty, not "" (quoted) which COPY would read as ''
    assert csv_row["tree_id"] == json_rows[dead]["tree_id"]


def test_an_empty_page_still_carries_the_schema_headers(soda_server):
    for fmt in ("json", "csv"):
        response = get(soda_server, fmt, **{"$where": "tree_id > 99999999", "$select": ":*,*"})

        assert response.status_code == 200
        assert json.loads(response.headers["X-SODA2-Fields"])[:2] == [":id", ":created_at"]
        assert len(json.loads(response.headers["X-SODA2-Types"])) == 49
    assert get(soda_server, "json", **{"$where": "tree_id > 99999999"}).json() == []


def test_etag_and_last_modified_change_with_the_data(soda_server):
    before = get(soda_server, **{"$limit": 1})
    assert get(soda_server, **{"$limit": 1}).headers["ETag"] == before.headers["ETag"]
    not_modified = requests.get(
        soda_server.resource_url(),
        params={"$limit": 1},
        headers={"If-None-Match": before.headers["ETag"]},
        timeout=10,
    )

    soda_server.update_rows(1)
    after = get(soda_server, **{"$limit": 1})

    assert not_modified.status_code == 304
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.headers["Last-Modified"] != before.headers["Last-Modified"]
    assert before.headers["X-Socrata-RequestId"] != after.headers["X-Socrata-RequestId"]


def test_metadata_lists_columns_and_when_rows_changed(soda_server):
    url = f"{soda_server.url}/api/views/{DEFAULT_DATASET}.json"
    before = requests.get(url, timeout=10).json()

    soda_server.add_rows(1)
    after = requests.get(url, timeout=10).json()

    assert [c["fieldName"] for c in before["columns"]] == list(FIELDS)
    assert before["columns"][0]["dataTypeName"] == "number"
    assert after["rowsUpdatedAt"] > before["rowsUpdatedAt"]


def test_an_unknown_dataset_is_404(soda_server):
    response = requests.get(f"{soda_server.url}/resource/abcd-1234.json", timeout=10)

    assert response.status_code == 404
    assert response.json()["error"] is True


@pytest.mark.parametrize("soda_server", [{"app_token": "right"}], indirect=True)
def test_a_configured_app_token_is_required(soda_server):
    url = soda_server.resource_url()
    missing = requests.get(url, timeout=10)
    wrong = requests.get(url, headers={"X-App-Token": "wrong"}, timeout=10)
    header = requests.get(url, headers={"x-app-token": "right"}, timeout=10)
    param = requests.get(url, params={"$$app_token": "right"}, timeout=10)

    assert [r.status_code for r in (missing, wrong, header, param)] == [403, 403, 200, 200]
    assert soda_server.app_tokens == [None, "wrong", "right", "right"]


def test_requests_are_recorded_with_their_queries(soda_server):
    get(soda_server, **{"$select": "count(*)", "$where": "tree_id > 5"})

    (request,) = soda_server.requests
    assert request.path == f"/resource/{DEFAULT_DATASET}.json"
    assert request.query == {"$select": "count(*)", "$where": "tree_id > 5"}


def test_connections_are_kept_alive(soda_server):
    with requests.Session() as session:
        for _ in range(3):
            response = session.get(soda_server.resource_url(), params={"$limit": 1}, timeout=10)
            assert response.headers["Content-Length"] == str(len(response.content))
    assert response.raw.version == 11
    assert "close" not in response.headers.get("Connection", "")


# --- changes between runs ------------------------------------------------------------------


def test_update_rows_shares_one_new_timestamp_and_changes_values(soda_server):
    before = soda_server.expected_rows()
    changed = soda_server.update_rows(5)
    after = soda_server.expected_rows()
    stamps = {row[":updated_at"] for row in soda_server.rows() if int(row["tree_id"]) in changed}

    assert len(stamps) == 1
    assert stamps.pop() > NEWEST_BASE_UPDATE
    assert [t for t in after if after[t] != before[t]] == changed


def test_update_rows_applies_given_values_and_nulls(soda_server):
    (tree_id,) = soda_server.update_rows([soda_server.tree_ids()[0]], health="Poor", bin=None)

    row = soda_server.expected_rows()[tree_id]
    assert row["health"] == "Poor"
    assert "bin" not in row


def test_add_rows_appends_new_tree_ids(soda_server):
    newest = max(soda_server.tree_ids())

    added = soda_server.add_rows(3)

    assert min(added) > newest
    assert get_json(soda_server, **{"$select": "count(*)"}) == [{"count": "2503"}]
    where = f":updated_at > '{NEWEST_BASE_UPDATE}'"
    assert sorted(int(row["tree_id"]) for row in get_json(soda_server, **{"$where": where})) == (
        added
    )


def test_delete_rows_makes_them_vanish(soda_server):
    deleted = soda_server.delete_rows(4)

    remaining = {int(row["tree_id"]) for row in all_rows(soda_server)}
    assert len(remaining) == 2496
    assert not remaining & set(deleted)


def test_republish_bumps_every_row_and_changes_no_data(soda_server):
    before = soda_server.expected_rows()

    stamp = soda_server.republish()

    assert {row[":updated_at"] for row in all_rows(soda_server)} == {stamp}
    assert soda_server.expected_rows() == before


def test_timestamps_round_trip():
    assert format_timestamp_ms(parse_timestamp_us(NEWEST_BASE_UPDATE) // 1000) == (
        NEWEST_BASE_UPDATE
    )


# --- malformed rows and schema switches ----------------------------------------------------


def test_corrupt_rows_plants_bad_values_where_asked(soda_server):
    before = soda_server.rows()

    soda_server.corrupt_rows(
        {0: "missing_tree_id", 1: "bad_dbh", 2: "bad_status", 3: "zero_latitude", 4: "bad_date"}
    )

    rows = soda_server.rows()
    assert "tree_id" not in rows[0]
    assert (rows[1]["tree_dbh"], rows[2]["status"]) == ("abc", "Sleeping")
    assert (rows[3]["latitude"], rows[4]["created_at"]) == ("0", "2015-13-45T00:00:00.000")
    assert [row[":updated_at"] for row in rows] == [row[":updated_at"] for row in before]
    assert rows[5:] == before[5:]


def test_disputed_column_names_can_be_switched_and_back(soda_server):
    soda_server.rename_columns(DISPUTED_NAMES)
    renamed = get(soda_server, "csv", **{"$limit": 1})

    soda_server.rename_columns({})
    restored = get(soda_server, "csv", **{"$limit": 1})

    header = renamed.text.splitlines()[0]
    assert {'"postcode"', '"borough"', '"community_board"'} <= set(header.split(","))
    assert '"zipcode"' not in header
    assert restored.text.splitlines()[0].split(",")[25] == '"zipcode"'


def test_an_unknown_extra_column_is_served(soda_server):
    soda_server.add_columns({"tree_height": "42"})

    rows = get_json(soda_server, **{"$limit": 2})

    assert [row["tree_height"] for row in rows] == ["42", "42"]


def test_a_dropped_column_is_gone(soda_server):
    soda_server.drop_columns(["zipcode"])

    response = get(soda_server, **{"$limit": 5})

    assert "zipcode" not in json.loads(response.headers["X-SODA2-Fields"])
    assert not any("zipcode" in row for row in response.json())


# --- faults --------------------------------------------------------------------------------


def test_a_status_fault_answers_once_with_retry_after(soda_server):
    soda_server.fail(429, retry_after=3)

    first, second = get(soda_server), get(soda_server)

    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert first.json()["code"] == "too_many_requests"
    assert second.status_code == 200


def test_a_fault_hits_only_its_offset_and_only_times_requests(soda_server):
    soda_server.fail(500, offset=1000, times=2)

    statuses = [get(soda_server, **{"$offset": offset}).status_code for offset in (0, 1000)]
    statuses += [get(soda_server, **{"$offset": 1000}).status_code for _ in range(2)]

    assert statuses == [200, 500, 500, 200]
    assert soda_server.pending_faults == 0


def test_a_fault_without_offset_hits_counts_too(soda_server):
    soda_server.fail(502)

    assert get(soda_server, **{"$select": "count(*)"}).status_code == 502


def test_drop_connection_sends_no_response(soda_server):
    soda_server.drop_connection()

    with pytest.raises(requests.ConnectionError):
        get(soda_server)


def test_truncate_body_sends_less_than_content_length(soda_server):
    soda_server.truncate_body()

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(soda_server, **{"$limit": 100})


def test_truncate_body_without_content_length_sends_invalid_json(soda_server):
    soda_server.truncate_body(content_length=False)

    response = get(soda_server, **{"$limit": 100})

    assert "Content-Length" not in response.headers
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_short_page_is_valid_but_short(soda_server):
    soda_server.short_page(7)

    response = get(soda_server, "csv", **{"$limit": 100})

    assert "Content-Length" not in response.headers
    assert len(list(csv.reader(io.StringIO(response.text)))) == 1 + 7


def test_break_record_leaves_one_csv_record_a_field_short(soda_server):
    soda_server.break_record()

    lines = list(csv.reader(io.StringIO(get(soda_server, "csv", **{"$limit": 100}).text)))

    assert sorted({len(line) for line in lines}) == [44, 45]
    assert [len(line) for line in lines].count(44) == 1


def test_break_record_puts_a_non_object_in_json(soda_server):
    soda_server.break_record()

    rows = get(soda_server, **{"$limit": 100}).json()

    assert [row for row in rows if not isinstance(row, dict)] == ["not an object"]


def test_slow_answers_late(soda_server):
    soda_server.slow(1.0)

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(soda_server.resource_url(), timeout=(5, 0.2))
    assert get(soda_server, **{"$limit": 1}).status_code == 200


# --- bulk CSV and the command line ---------------------------------------------------------


def test_bulk_csv_uses_display_names_and_us_dates(soda_server, tmp_path):
    path = tmp_path / "trees.csv"
    rows = soda_server.expected_rows()

    written = soda_server.write_bulk_csv(path)

    header, first, *_ = list(csv.reader(path.open()))
    assert written == len(rows) == 2500
    assert {"postcode", "borough", "community board", "council district", "census tract"} <= set(
        header
    )
    assert not any(name.startswith(":") for name in header)
    record = dict(zip(header, first, strict=True))
    iso = rows[int(record["tree_id"])]["created_at"]
    assert record["created_at"] == f"{iso[5:7]}/{iso[8:10]}/{iso[:4]}"


def test_command_line_prints_its_url_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.soda", "--rows", "20", "--app-token", "t0k"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        response = requests.get(
            f"{url}/resource/{DEFAULT_DATASET}.json",
            params={"$select": "count(*)"},
            headers={"X-App-Token": "t0k"},
            timeout=10,
        )
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert response.json() == [{"count": "20"}]
    assert process.returncode == 0

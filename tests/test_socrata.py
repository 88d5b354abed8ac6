"""The SODA client against the fake SODA server, over real HTTP on loopback."""

import csv
import io
import json
import logging
import socket
import time
from email.utils import formatdate

import pytest
import requests

from tests.fakes.soda import DEFAULT_DATASET, FakeSodaServer
from trees.socrata import (
    MAX_PAGE_SIZE,
    Page,
    SocrataBadResponse,
    SocrataClient,
    SocrataSchemaError,
    SocrataUnavailable,
    redact_url_secrets,
    soql_quote,
)

TOKEN = "tok-3f9c1e7a"  # distinctive, so a leak would be found by a plain substring search


@pytest.fixture
def sleeps() -> list[float]:
    """What the client asked to sleep, in order (instead of sleeping)."""
    return []


@pytest.fixture
def make_client(soda_server: FakeSodaServer, sleeps: list[float]):
    clients: list[SocrataClient] = []

    def make(**options) -> SocrataClient:
        client = SocrataClient(soda_server.url, sleep=sleeps.append, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def records(page: Page) -> list[dict[str, str]]:
    if page.format == "json":
        return json.loads(page.body)
    return list(csv.DictReader(io.StringIO(page.body.decode())))


def page_ids(pages: list[Page]) -> list[str]:
    return [row[":id"] for page in pages for row in records(page)]


def data_requests(server: FakeSodaServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests if r.path.startswith("/resource/")]


# --- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_pages_cover_every_row_once_in_id_order(soda_server, make_client, fmt):
    pages = list(make_client(format=fmt).iter_pages(DEFAULT_DATASET, page_size=700))

    assert [page.row_count for page in pages] == [700, 700, 700, 400]
    assert [page.offset for page in pages] == [0, 700, 1400, 2100]
    assert page_ids(pages) == [row[":id"] for row in soda_server.rows()]
    assert len(set(page_ids(pages))) == 2500


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_page_fields_name_system_fields_first(make_client, fmt):
    page = next(make_client(format=fmt).iter_pages(DEFAULT_DATASET, page_size=10))

    assert page.fields[:5] == (":id", ":created_at", ":updated_at", ":version", "tree_id")
    assert len(page.fields) == 49
    assert page.format == fmt


def test_every_page_after_the_first_asks_for_the_ids_after_the_last_one(soda_server, make_client):
    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=1000))

    ends = [page_ids([page])[-1] for page in pages]
    assert data_requests(soda_server) == [
        {"$select": ":*,*", "$order": ":id", "$limit": "1000"},
        *(
            {"$select": ":*,*", "$where": f":id > '{end}'", "$order": ":id", "$limit": "1000"}
            for end in ends[:-1]
        ),
    ]  # the last page is short: no request after it
    assert [page.last_id for page in pages] == ends
    assert [page.offset for page in pages] == [0, 1000, 2000]


def test_incremental_pages_continue_after_the_last_timestamp_and_id(soda_server, make_client):
    soda_server.update_rows(30)
    where = f":updated_at > {soql_quote('2023-10-09T10:02:32.402')}"

    pages = list(
        make_client().iter_pages(
            DEFAULT_DATASET, where=where, order=":updated_at,:id", page_size=20
        )
    )

    stamp, last = pages[0].last_updated_at.removesuffix("Z"), pages[0].last_id
    assert data_requests(soda_server)[1]["$where"] == (
        f"({where}) AND (:updated_at > '{stamp}' OR (:updated_at = '{stamp}' AND :id > '{last}'))"
    )
    assert [page.row_count for page in pages] == [20, 10]


def test_rows_deleted_while_paging_make_no_row_skipped(soda_server, make_client):
    first = soda_server.rows()[:500]
    soda_server.on_page_request(
        lambda server: server.delete_rows([int(row["tree_id"]) for row in first[:200]]), nth=2
    )

    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=500))

    assert page_ids(pages) == [row[":id"] for row in first + soda_server.rows()[300:]]


def test_a_row_updated_while_an_incremental_run_pages_comes_again_newer(soda_server, make_client):
    changed = soda_server.update_rows(100)  # one timestamp: in :id order
    first_five = [int(r["tree_id"]) for r in soda_server.rows() if int(r["tree_id"]) in changed]
    first_five = first_five[:5]  # on the first page
    where = f":updated_at > {soql_quote('2023-10-09T10:02:32.402')}"
    soda_server.on_page_request(lambda server: server.update_rows(first_five), nth=2)

    pages = list(
        make_client().iter_pages(
            DEFAULT_DATASET, where=where, order=":updated_at,:id", page_size=40
        )
    )

    tree_ids = [int(row["tree_id"]) for page in pages for row in records(page)]
    assert sorted(set(tree_ids)) == changed
    assert len(tree_ids) == 105  # the five moved past the cursor and came once more
    assert tree_ids[:5] == tree_ids[-5:] == first_five


def test_where_and_order_are_sent_and_applied(soda_server, make_client):
    changed = soda_server.update_rows(30)
    where = f":updated_at > {soql_quote('2023-10-09T10:02:32.402Z')}"

    pages = list(make_client().iter_pages(DEFAULT_DATASET, where=where, order=":updated_at,:id"))

    assert data_requests(soda_server)[0]["$where"] == where
    assert data_requests(soda_server)[0]["$order"] == ":updated_at,:id"
    assert sorted(int(row["tree_id"]) for row in records(pages[0])) == changed


def test_an_exact_multiple_of_the_page_size_yields_no_trailing_empty_page(
    soda_server, make_client
):
    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=500))

    assert [page.row_count for page in pages] == [500] * 5
    assert len(data_requests(soda_server)) == 6  # the sixth, empty, page ends the loop


def test_an_empty_result_yields_one_empty_page_with_its_fields(make_client):
    pages = list(make_client().iter_pages(DEFAULT_DATASET, where="tree_id > 999999999"))

    assert [(page.row_count, page.fields[0]) for page in pages] == [(0, ":id")]


def test_pages_are_fetched_one_at_a_time(soda_server, make_client):
    pages = make_client().iter_pages(DEFAULT_DATASET, page_size=500)

    next(pages)

    assert len(data_requests(soda_server)) == 1


def test_max_rows_asks_only_for_what_is_left(soda_server, make_client):
    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=500, max_rows=1200))

    assert [page.row_count for page in pages] == [500, 500, 200]
    assert [query["$limit"] for query in data_requests(soda_server)] == ["500", "500", "200"]


def test_an_order_that_is_no_keyset_is_refused(make_client):
    with pytest.raises(ValueError, match="keyset"):
        next(make_client().iter_pages(DEFAULT_DATASET, order="tree_id"))


@pytest.mark.parametrize("page_size", [0, -1, MAX_PAGE_SIZE + 1])
def test_page_size_must_be_within_the_api_limits(make_client, page_size):
    with pytest.raises(ValueError, match="page_size"):
        next(make_client().iter_pages(DEFAULT_DATASET, page_size=page_size))


def test_order_cannot_be_left_out(make_client):
    with pytest.raises(ValueError, match="order"):
        next(make_client().iter_pages(DEFAULT_DATASET, order=""))


def test_json_fields_fall_back_to_the_keys_in_first_seen_order(soda_server, make_client):
    rows = [{":id": "row-1", "tree_id": "1"}, {":id": "row-2", "tree_id": "2", "health": "Good"}]
    soda_server.respond_with(200, rows)

    (page,) = make_client(format="json").iter_pages(DEFAULT_DATASET, page_size=10)

    assert (page.fields, page.row_count, page.last_id) == (
        (":id", "tree_id", "health"),
        2,
        "row-2",
    )


def test_a_page_whose_last_row_has_no_id_is_fetched_again(soda_server, make_client):
    soda_server.respond_with(200, [{"tree_id": "1"}])

    pages = list(make_client(format="json").iter_pages(DEFAULT_DATASET, page_size=1000))

    assert page_ids(pages) == [row[":id"] for row in soda_server.rows()]


# --- count ---------------------------------------------------------------------------------


def test_count_returns_the_number_of_rows(make_client):
    assert make_client().count(DEFAULT_DATASET) == 2500


def test_count_applies_where(soda_server, make_client):
    soda_server.update_rows(7)
    where = ":updated_at > '2023-10-09T10:02:32.402'"

    assert make_client().count(DEFAULT_DATASET, where=where) == 7
    assert data_requests(soda_server)[-1] == {"$select": "count(*)", "$where": where}


def test_count_reads_the_value_whatever_its_key(soda_server, make_client):
    soda_server.respond_with(200, [{"count_1": "683788"}])

    assert make_client().count(DEFAULT_DATASET) == 683788


# --- the app token -------------------------------------------------------------------------


@pytest.mark.parametrize("soda_server", [{"app_token": TOKEN}], indirect=True)
def test_app_token_goes_only_in_the_header(soda_server, make_client):
    client = make_client(app_token=TOKEN)
    client.count(DEFAULT_DATASET)
    list(client.iter_pages(DEFAULT_DATASET, page_size=1000))

    assert soda_server.app_tokens == [TOKEN] * 4
    assert all(TOKEN not in request.raw_query for request in soda_server.requests)


@pytest.mark.parametrize("soda_server", [{"app_token": TOKEN}], indirect=True)
def test_app_token_appears_in_no_log_line_and_no_error(soda_server, make_client, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's request lines too
    soda_server.respond_with(500, {"message": f"upstream said: bad token {TOKEN}"}, times=3)

    with pytest.raises(SocrataUnavailable) as raised:
        make_client(app_token=TOKEN, max_attempts=3).count(DEFAULT_DATASET)

    assert "upstream said" in str(raised.value)  # the excerpt is there, scrubbed
    assert TOKEN not in str(raised.value)
    assert "[app token]" in str(raised.value)
    assert "X-Socrata-RequestId" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("soda_server", [{"app_token": TOKEN}], indirect=True)
def test_a_rejected_token_fails_at_once_and_says_so(soda_server, make_client, sleeps):
    with pytest.raises(SocrataBadResponse, match="rejected the app token") as raised:
        make_client(app_token="not-the-token").count(DEFAULT_DATASET)

    assert raised.value.status == 403
    assert len(soda_server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("soda_server", [{"app_token": TOKEN}], indirect=True)
def test_a_required_token_that_is_missing_is_reported(make_client):
    with pytest.raises(SocrataBadResponse, match="without an app token"):
        make_client().count(DEFAULT_DATASET)


@pytest.mark.parametrize("soda_server", [{"app_token": TOKEN}], indirect=True)
def test_a_token_inside_the_base_url_goes_in_the_header_and_nowhere_else(soda_server, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's request lines too
    client = SocrataClient(f"{soda_server.url}/?$$app_token={TOKEN}", sleep=lambda _: None)
    client.count(DEFAULT_DATASET)
    soda_server.fail(400)
    with pytest.raises(SocrataBadResponse) as raised:
        client.count(DEFAULT_DATASET)

    assert soda_server.app_tokens == [TOKEN, TOKEN]
    assert all(TOKEN not in request.raw_query for request in soda_server.requests)
    assert (
        client.resource_url(DEFAULT_DATASET) == f"{soda_server.url}/resource/{DEFAULT_DATASET}.csv"
    )
    assert TOKEN not in str(raised.value) + caplog.text


def test_a_login_and_credential_parameters_in_the_base_url_are_sent_but_never_shown(
    soda_server, caplog
):
    caplog.set_level(logging.DEBUG)
    client = SocrataClient(
        f"http://me:pa55w0rd@{soda_server.url.removeprefix('http://')}/?key=k3y-123",
        max_attempts=1,
    )
    with pytest.raises(SocrataBadResponse) as raised:  # the fake knows no column "key"
        client.count(DEFAULT_DATASET)

    [request] = soda_server.requests
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.query["key"] == "k3y-123"
    assert client.resource_url(DEFAULT_DATASET).startswith(soda_server.url)
    for secret in ("pa55w0rd", "k3y-123"):
        assert secret not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "https://x.us/r.csv?$$app_token=S&$limit=5",
            "https://x.us/r.csv?$$app_token=[redacted]&$limit=5",
        ),
        (
            '"GET /r.csv?%24%24app_token=S&%24limit=5 HTTP/1.1"',
            '"GET /r.csv?%24%24app_token=[redacted]&%24limit=5 HTTP/1.1"',
        ),
        ("https://me:S@x.us/r.csv", "https://[redacted]@x.us/r.csv"),
        (
            "https://x.us/?token=S&api_key=S&password=S&client_secret=S",
            "https://x.us/?token=[redacted]&api_key=[redacted]&password=[redacted]&client_secret=[redacted]",
        ),
        (
            "https://x.us/r.csv?$where=:id > 'row-1'&$order=:id",
            "https://x.us/r.csv?$where=:id > 'row-1'&$order=:id",
        ),
    ],
)
def test_url_credentials_are_redacted_wherever_they_appear(text, shown):
    assert redact_url_secrets(text) == shown


def test_requests_name_the_project_in_the_user_agent(soda_server, make_client):
    make_client().count(DEFAULT_DATASET)

    assert soda_server.requests[0].headers["User-Agent"].startswith("nyc-trees/")


# --- errors that another try will not fix --------------------------------------------------


def test_an_unknown_dataset_fails_at_once(soda_server, make_client, sleeps):
    with pytest.raises(SocrataBadResponse, match="no such dataset") as raised:
        next(make_client().iter_pages("abcd-1234"))

    assert raised.value.status == 404
    assert "/resource/abcd-1234.csv" in str(raised.value)
    assert (len(soda_server.requests), sleeps) == (1, [])


def test_a_malformed_query_fails_at_once(soda_server, make_client, sleeps):
    with pytest.raises(SocrataBadResponse, match=r"query\.compiler\.malformed") as raised:
        next(make_client().iter_pages(DEFAULT_DATASET, where="tree_id >> 5"))

    assert raised.value.status == 400
    assert (len(soda_server.requests), sleeps) == (1, [])


def test_a_missing_column_is_a_schema_error(soda_server, make_client, sleeps):
    soda_server.drop_columns(["tree_id"])

    with pytest.raises(SocrataSchemaError, match=r"schema changed.*tree_id"):
        next(make_client().iter_pages(DEFAULT_DATASET, where="tree_id > 5"))

    assert (len(soda_server.requests), sleeps) == (1, [])


# --- faults another try fixes --------------------------------------------------------------

RETRYABLE_FAULTS = {
    "429": lambda server, offset: server.fail(429, offset=offset, times=2),
    "500": lambda server, offset: server.fail(500, offset=offset, times=2),
    "502": lambda server, offset: server.fail(502, offset=offset, times=2),
    "503": lambda server, offset: server.fail(503, offset=offset, times=2),
    "504": lambda server, offset: server.fail(504, offset=offset, times=2),
    "202 still processing": lambda server, offset: server.fail(202, offset=offset, times=2),
    "dropped connection": lambda server, offset: server.drop_connection(offset=offset, times=2),
    "body shorter than Content-Length": lambda server, offset: server.truncate_body(
        offset=offset, times=2
    ),
    "close-delimited body cut off": lambda server, offset: server.truncate_body(
        offset=offset, times=2, content_length=False
    ),
    "record with a field missing": lambda server, offset: server.break_record(
        offset=offset, times=2
    ),
    "HTML error page": lambda server, offset: server.respond_with(
        200, b"<html>busy</html>", content_type="text/html", offset=offset, times=2
    ),
}


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("inject", RETRYABLE_FAULTS.values(), ids=RETRYABLE_FAULTS.keys())
def test_a_retryable_fault_is_survived_with_the_same_result(
    soda_server, make_client, sleeps, fmt, inject
):
    client = make_client(format=fmt)
    clean = list(client.iter_pages(DEFAULT_DATASET, page_size=1000))
    inject(soda_server, 1000)

    retried = list(client.iter_pages(DEFAULT_DATASET, page_size=1000))

    assert [page.body for page in retried] == [page.body for page in clean]
    assert soda_server.pending_faults == 0
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "text/csv"),  # no header row
        (b'"a","b"\n"1","2","3"\n', "text/csv"),
    ],
    ids=["empty", "record wider than header"],
)
def test_an_invalid_csv_body_is_fetched_again(
    soda_server, make_client, sleeps, body, content_type
):
    soda_server.respond_with(200, body, content_type=content_type)

    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=1000))

    assert sum(page.row_count for page in pages) == 2500
    assert len(sleeps) == 1


@pytest.mark.parametrize("body", [b"[{", b'{"tree_id": "1"}', b'[{"tree_id": "1"}, 2]'], ids=str)
def test_an_invalid_json_body_is_fetched_again(soda_server, make_client, sleeps, body):
    soda_server.respond_with(200, body)

    pages = list(make_client(format="json").iter_pages(DEFAULT_DATASET, page_size=1000))

    assert sum(page.row_count for page in pages) == 2500
    assert len(sleeps) == 1


def test_a_read_timeout_is_retried(soda_server, make_client, sleeps):
    soda_server.slow(3.0, offset=1000)

    # Well above the ~0.2 s a cold first page of the fake takes on a busy machine.
    pages = list(make_client(read_timeout=1.0).iter_pages(DEFAULT_DATASET, page_size=1000))

    assert sum(page.row_count for page in pages) == 2500
    assert len(sleeps) == 1


def test_retry_after_seconds_are_honoured(soda_server, make_client, sleeps):
    soda_server.fail(429, retry_after=7)

    make_client().count(DEFAULT_DATASET)

    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured(soda_server, make_client, sleeps):
    soda_server.fail(503, retry_after=formatdate(time.time() + 30, usegmt=True))

    make_client().count(DEFAULT_DATASET)

    assert len(sleeps) == 1
    assert 27 <= sleeps[0] <= 30


def test_retry_after_is_capped(soda_server, make_client, sleeps):
    soda_server.fail(429, retry_after=3600)

    make_client(retry_after_max=90).count(DEFAULT_DATASET)

    assert sleeps == [90]


def test_backoff_doubles_with_jitter_up_to_its_maximum(soda_server, make_client, sleeps):
    soda_server.fail(500, times=5)

    make_client(backoff_factor=1, backoff_max=5).count(DEFAULT_DATASET)

    ceilings = [1, 2, 4, 5, 5]
    assert len(sleeps) == 5
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True)), sleeps


def test_default_backoff_waits_seconds_not_minutes(soda_server, make_client, sleeps):
    soda_server.fail(503, times=5)

    make_client().count(DEFAULT_DATASET)  # the sixth and last attempt succeeds

    assert 0.25 <= sleeps[0] <= 0.5
    assert 7.75 <= sum(sleeps) <= 15.5


# --- giving up -----------------------------------------------------------------------------


def test_exhausted_retries_say_what_failed(soda_server, make_client, sleeps):
    soda_server.fail(503, times=4, offset=1000)

    with pytest.raises(SocrataUnavailable) as raised:
        list(make_client(max_attempts=4).iter_pages(DEFAULT_DATASET, page_size=1000))

    message = str(raised.value)
    assert f"{soda_server.url}/resource/{DEFAULT_DATASET}.csv?" in message
    assert "$where=:id > 'row-" in message
    assert "$offset" not in message
    assert "HTTP 503" in message
    assert f"X-Socrata-RequestId {raised.value.request_id}" in message
    assert "Service unavailable" in message  # the body excerpt
    assert "gave up after 4 attempts" in message
    assert isinstance(raised.value.__cause__, requests.HTTPError)
    assert len(sleeps) == 3


def test_exhausted_retries_on_bad_bodies_raise_bad_response(soda_server, make_client):
    soda_server.break_record(times=3)

    with pytest.raises(SocrataBadResponse, match=r"CSV record .* fields, the header has 49"):
        next(make_client(max_attempts=3).iter_pages(DEFAULT_DATASET, page_size=1000))


def test_exhausted_retries_on_dropped_connections_raise_unavailable(soda_server, make_client):
    soda_server.drop_connection(times=3)

    with pytest.raises(SocrataUnavailable, match="could not get a response") as raised:
        make_client(max_attempts=3).count(DEFAULT_DATASET)

    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    assert len(soda_server.requests) == 3


def test_a_refused_connection_raises_unavailable(sleeps):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SocrataClient(f"http://127.0.0.1:{port}", max_attempts=3, sleep=sleeps.append)

    with client, pytest.raises(SocrataUnavailable, match="could not get a response"):
        client.count(DEFAULT_DATASET)

    assert len(sleeps) == 2


# --- the short-page guard ------------------------------------------------------------------


def test_a_short_page_is_followed_by_one_more_when_more_rows_exist(soda_server, make_client):
    client = make_client()
    total = client.count(DEFAULT_DATASET)
    soda_server.short_page(100, offset=1000)

    pages = list(client.iter_pages(DEFAULT_DATASET, page_size=1000, expected_total=total))

    assert page_ids(pages) == [row[":id"] for row in soda_server.rows()]
    assert [page.row_count for page in pages] == [1000, 100, 1000, 400]
    assert [page.offset for page in pages] == [0, 1000, 1100, 2100]


def test_an_empty_answer_after_a_short_page_ends_the_fetch(soda_server, make_client):
    client = make_client()
    total = client.count(DEFAULT_DATASET)
    soda_server.delete_rows(100)  # after the count: fewer rows than it said
    soda_server.clear_requests()

    pages = list(client.iter_pages(DEFAULT_DATASET, page_size=1000, expected_total=total))

    assert page_ids(pages) == [row[":id"] for row in soda_server.rows()]
    assert len(data_requests(soda_server)) == 4  # 1000, 1000, 400, then the empty one


def test_without_an_expected_total_a_short_page_ends_the_pages(soda_server, make_client):
    soda_server.short_page(100, offset=1000)

    pages = list(make_client().iter_pages(DEFAULT_DATASET, page_size=1000))

    assert [page.row_count for page in pages] == [1000, 100]  # why sync passes expected_total


# --- small pieces --------------------------------------------------------------------------


def test_soql_quote_doubles_single_quotes():
    assert soql_quote("Prince's Bay") == "'Prince''s Bay'"


@pytest.mark.parametrize(
    "options", [{"base_url": "data.cityofnewyork.us"}, {"format": "xml"}, {"max_attempts": 0}]
)
def test_bad_client_options_are_refused(options):
    with pytest.raises(ValueError, match="must"):
        SocrataClient(**{"base_url": "https://data.cityofnewyork.us", **options})


def test_resource_url_names_dataset_and_format():
    with SocrataClient("https://data.cityofnewyork.us/", format="json") as client:
        assert client.resource_url("uvpi-gqnh") == (
            "https://data.cityofnewyork.us/resource/uvpi-gqnh.json"
        )


NO_AGGREGATES = {
    "code": "query.compiler.malformed",
    "error": True,
    "message": "function max is not supported on system fields",
    "data": {},
}


def test_newest_updated_at_is_the_newest_rows_stamp(soda_server, make_client):
    soda_server.update_rows(10)

    assert make_client().newest_updated_at(DEFAULT_DATASET) == soda_server.last_updated_at


def test_newest_updated_at_asks_for_the_newest_row_when_max_is_refused(soda_server, make_client):
    soda_server.update_rows(10)
    soda_server.respond_with(400, NO_AGGREGATES)

    newest = make_client().newest_updated_at(DEFAULT_DATASET)

    assert newest == soda_server.last_updated_at
    fallback = soda_server.requests[-1].query
    assert (fallback["$order"], fallback["$limit"]) == (":updated_at DESC", "1")


def test_newest_updated_at_of_an_empty_dataset_is_none(soda_server_factory):
    server = soda_server_factory(rows=0)
    server.respond_with(400, NO_AGGREGATES)

    client = SocrataClient(server.url, backoff_factor=0.001, backoff_max=0.01)
    assert client.newest_updated_at(DEFAULT_DATASET) is None

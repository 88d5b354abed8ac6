"""The sync service end to end: the fake SODA server over real HTTP, the real Postgres."""

import datetime
import functools
import json
import logging
import random

import psycopg
import pytest
from django.db import connection

from tests.counts import counted_groups, counted_trees, group_counts, tree_counts
from tests.db import other_connection
from tests.fakes.soda import DISPUTED_NAMES, MALFORMATIONS
from tests.mirror import differences, expected_table, stored_table
from trees import cache, sync
from trees.exceptions import MassDeleteRefused, SyncAlreadyRunning, SyncError
from trees.models import DataVersion, SyncRun, Tree
from trees.socrata import SocrataClient

pytestmark = pytest.mark.django_db(transaction=True)

# What the comparison looks at: the key, a value of every kind, and the species.
COMPARED = (
    "tree_id, tree_dbh, status, health, zipcode, borough, community_board, latitude, "
    "longitude, surveyed_on, root_stone, bbl, census_tract, socrata_updated_at"
)


def source_for(server, **client_options) -> sync.SocrataSource:
    client = SocrataClient(server.url, backoff_factor=0.001, backoff_max=0.01, **client_options)
    return sync.SocrataSource(client=client, dataset=server.dataset)


def sync_from(server, **options) -> SyncRun:
    client_options = options.pop("client", {})
    return sync.run(source=source_for(server, **client_options), dataset=server.dataset, **options)


def table() -> list[tuple]:
    """Every stored tree, every column, with its species by name: for exact comparisons."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.*, s.latin_name, s.common_name FROM trees_tree t "
            "LEFT JOIN trees_species s ON s.id = t.species_id ORDER BY t.tree_id"
        )
        columns = [c.name for c in cursor.description]
        species_id = columns.index("species_id")
        return [row[:species_id] + row[species_id + 1 :] for row in cursor.fetchall()]


def stored() -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {COMPARED}, s.latin_name FROM trees_tree t "
            "LEFT JOIN trees_species s ON s.id = t.species_id"
        )
        return {row[0]: row for row in cursor.fetchall()}


def expected(server) -> dict[int, tuple]:
    """The server's rows, typed in Python independently of the loader's SQL."""

    def number(value, kind=int):
        return None if value is None else kind(value)

    result = {}
    for raw in server.rows():
        tree_id = int(raw["tree_id"])
        result[tree_id] = (
            tree_id,
            number(raw.get("tree_dbh")),
            raw["status"],
            raw.get("health", ""),
            raw.get("zipcode", raw.get("postcode", "")),
            raw.get("boroname", raw.get("borough")),
            number(raw.get("cb_num", raw.get("community_board"))),
            float(raw["latitude"]),
            float(raw["longitude"]),
            datetime.date.fromisoformat(raw["created_at"][:10]),
            {"Yes": True, "No": False}.get(raw.get("root_stone")),
            number(raw.get("bbl")),
            raw.get("census_tract", ""),
            datetime.datetime.fromisoformat(raw[":updated_at"]),
            raw.get("spc_latin"),
        )
    return result


def data_version() -> int:
    return DataVersion.objects.get().version


@pytest.fixture
def small_server(soda_server_factory):
    return soda_server_factory(rows=600)


def test_full_sync_stores_exactly_the_served_rows(soda_server):
    run = sync_from(soda_server)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.mode == SyncRun.Mode.FULL
    assert (run.rows_fetched, run.rows_inserted, run.rows_rejected) == (2500, 2500, 0)
    assert stored() == expected(soda_server)
    assert run.watermark == max(row[13] for row in expected(soda_server).values())


def test_first_load_keeps_every_index_and_constraint(small_server):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'trees_tree'")
        indexes_before = cursor.fetchone()[0]
        sync_from(small_server)
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'trees_tree'")
        assert cursor.fetchone()[0] == indexes_before
        cursor.execute(
            "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'trees_tree'::regclass AND contype = 'f'"
        )
        assert cursor.fetchone()[0] == 1


def test_rerun_writes_nothing(small_server):
    sync_from(small_server, full=True)
    before, version = table(), data_version()
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(xmin::text::bigint) FROM trees_tree")
        xmins = cursor.fetchone()[0]
    run = sync_from(small_server, full=True)
    assert (run.rows_inserted, run.rows_updated, run.rows_deleted) == (0, 0, 0)
    assert run.rows_unchanged == 600
    assert table() == before
    assert data_version() == version
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(xmin::text::bigint) FROM trees_tree")
        assert cursor.fetchone()[0] == xmins  # no row was rewritten


def test_default_run_after_a_full_one_is_incremental(small_server):
    sync_from(small_server)
    small_server.clear_requests()
    run = sync_from(small_server)
    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert run.rows_fetched == 0
    # The cheap check: one count, no page.
    assert len(small_server.requests) == 1
    assert "count(*)" in small_server.requests[0].query["$select"]


def test_incremental_run_picks_up_exactly_the_changed_and_added_rows(small_server):
    first = sync_from(small_server)
    changed = small_server.update_rows(25, health="Poor")
    added = small_server.add_rows(10)
    run = sync_from(small_server)
    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert (run.rows_fetched, run.rows_inserted, run.rows_updated) == (35, 10, 25)
    assert stored() == expected(small_server)
    assert set(changed).isdisjoint(added)
    assert run.watermark > first.watermark


def test_incremental_pages_do_not_lose_rows_sharing_one_timestamp(small_server):
    sync_from(small_server)
    changed = small_server.update_rows(250, health="Poor")  # all with one :updated_at
    run = sync_from(small_server, page_size=40)
    assert run.rows_fetched == 250
    assert set(Tree.objects.filter(health="Poor").values_list("tree_id", flat=True)) >= set(
        changed
    )
    assert stored() == expected(small_server)


def test_incremental_window_is_ordered_by_updated_at_then_id(small_server):
    sync_from(small_server)
    small_server.update_rows(5)
    small_server.clear_requests()
    sync_from(small_server)
    pages = [r.query for r in small_server.requests if "count" not in r.query["$select"]]
    page_query = pages[-1]
    assert page_query["$order"] == ":updated_at,:id"
    assert page_query["$where"].startswith(":updated_at > '")


def test_full_run_removes_deleted_rows(small_server):
    sync_from(small_server)
    deleted = small_server.delete_rows(7)
    run = sync_from(small_server, full=True)
    assert run.rows_deleted == 7
    assert not Tree.objects.filter(tree_id__in=deleted).exists()
    assert stored() == expected(small_server)


def test_tree_counts_follow_every_kind_of_write(small_server):
    """First load, upserts and deletions all keep TreeCount equal to the trees' own counts."""
    sync_from(small_server)
    assert tree_counts() == counted_trees()
    small_server.update_rows(40, health="Poor")
    small_server.add_rows(15)
    sync_from(small_server)
    assert tree_counts() == counted_trees()
    small_server.delete_rows(9)
    sync_from(small_server, full=True)
    assert tree_counts() == counted_trees()
    assert sum(tree_counts().values()) == len(small_server.rows())


def test_group_counts_follow_every_kind_of_write(small_server):
    """First load (counted by the loader), upserts and deletions (by the triggers)."""
    sync_from(small_server)
    assert group_counts() == counted_groups()
    small_server.update_rows(40, health="Poor", nta="BX29")
    small_server.add_rows(15)
    sync_from(small_server)
    assert group_counts() == counted_groups()
    small_server.delete_rows(9)
    sync_from(small_server, full=True)
    assert group_counts() == counted_groups()
    per_nta = [n for (column, _, _), (n, _, _) in group_counts().items() if column == "nta"]
    assert sum(per_nta) == len(small_server.rows())


def test_incremental_run_deletes_nothing(small_server):
    sync_from(small_server)
    small_server.delete_rows(7)
    run = sync_from(small_server)
    assert run.rows_deleted == 0
    assert Tree.objects.count() == 600


def test_limited_full_run_deletes_nothing_and_leaves_no_watermark(small_server):
    sync_from(small_server)
    small_server.delete_rows(3)
    run = sync_from(small_server, full=True, limit=100)
    assert (run.rows_fetched, run.rows_deleted) == (100, 0)
    assert run.watermark is None
    assert "incomplete fetch" in run.warnings[0]
    assert sync.last_complete_run(small_server.dataset).pk != run.pk


def test_failed_run_changes_nothing_and_the_next_run_completes(small_server):
    sync_from(small_server)
    before = table()
    small_server.delete_rows(5)
    small_server.update_rows(5, health="Poor")
    small_server.fail(500, times=100, offset=200)
    with pytest.raises(SyncError, match=r"\b500\b"):
        sync_from(small_server, full=True, page_size=100)
    assert table() == before  # nothing half-written, nothing deleted
    failed = SyncRun.objects.latest("started_at")
    assert failed.status == SyncRun.Status.FAILED
    assert "nothing was written" in failed.error_message or "500" in failed.error_message
    small_server.clear_faults()
    run = sync_from(small_server, full=True, page_size=100)
    assert (run.rows_deleted, run.rows_updated) == (5, 5)
    assert stored() == expected(small_server)


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("fail", {"status": 429, "retry_after": 0}),
        ("fail", {"status": 500}),
        ("fail", {"status": 503, "times": 2}),
        ("fail", {"status": 202}),
        ("drop_connection", {}),
        ("truncate_body", {}),
        ("truncate_body", {"content_length": False}),
        ("break_record", {}),
        ("short_page", {"rows": 30}),
    ],
)
def test_each_fault_is_survived_with_the_same_result(soda_server_factory, fault, options):
    clean = soda_server_factory(rows=450)
    sync_from(clean, page_size=100)
    clean_table = table()
    Tree.objects.all().delete()
    SyncRun.objects.all().delete()

    faulty = soda_server_factory(rows=450)
    getattr(faulty, fault)(offset=200, **options)
    run = sync_from(faulty, page_size=100)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert faulty.pending_faults == 0  # the fault really happened
    assert table() == clean_table


def test_json_format_stores_the_same_table_as_csv(soda_server_factory):
    server = soda_server_factory(rows=300)
    sync_from(server)
    from_csv = table()
    Tree.objects.all().delete()
    SyncRun.objects.all().delete()
    sync_from(server, client={"format": "json"})
    assert table() == from_csv


def test_malformed_rows_are_rejected_and_counted_while_the_rest_land(small_server):
    kinds = list(MALFORMATIONS)
    bad = small_server.corrupt_rows({10 * (i + 1): kind for i, kind in enumerate(kinds)})
    run = sync_from(small_server)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.rows_rejected == len(kinds)
    assert run.rows_inserted == 600 - len(kinds)
    assert len(run.rejection_samples) == len(kinds)
    reasons = " | ".join(sample["reason"] for sample in run.rejection_samples)
    for expected_reason in ("tree_id is missing", "tree_dbh is not", "status is not one of"):
        assert expected_reason in reasons
    assert not Tree.objects.filter(tree_id__in=[t for t in bad if t is not None]).exists()


def test_disputed_column_names_are_accepted(small_server):
    small_server.rename_columns(DISPUTED_NAMES)
    run = sync_from(small_server)
    assert run.rows_rejected == 0
    assert stored() == expected(small_server)


def test_unknown_columns_are_ignored_with_a_warning(small_server, caplog):
    small_server.add_columns({"shiny_new_column": "42"})
    with caplog.at_level(logging.WARNING):
        run = sync_from(small_server)
    assert run.rows_inserted == 600
    assert run.warnings == ["Ignoring unknown column 'shiny_new_column'"]
    assert "shiny_new_column" in caplog.text


def test_a_missing_required_column_fails_the_run_naming_it(small_server):
    small_server.drop_columns(["latitude"])
    with pytest.raises(SyncError, match="required field: latitude"):
        sync_from(small_server)
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert "latitude" in run.error_message
    assert not Tree.objects.exists()


def test_a_concurrent_run_is_refused(small_server):
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [sync.ADVISORY_LOCK_ID])
        with pytest.raises(SyncAlreadyRunning, match="Another sync is running"):
            sync_from(small_server)
    refused = SyncRun.objects.get()
    assert refused.status == SyncRun.Status.FAILED
    assert "Another sync is running" in refused.error_message
    assert not Tree.objects.exists()
    assert sync_from(small_server).status == SyncRun.Status.SUCCEEDED  # the lock is free again


def test_an_abandoned_running_run_is_marked_failed(small_server):
    abandoned = SyncRun.objects.create(dataset=small_server.dataset, mode="full")
    sync_from(small_server)
    abandoned.refresh_from_db()
    assert abandoned.status == SyncRun.Status.FAILED
    assert "abandoned" in abandoned.error_message


@pytest.mark.parametrize(
    "soda_server", [{"rows": 200, "app_token": "s3cret-t0ken"}], indirect=True
)
def test_the_token_is_sent_as_a_header_and_stored_nowhere(soda_server, caplog):
    with caplog.at_level(logging.DEBUG):
        run = sync_from(soda_server, client={"app_token": "s3cret-t0ken"})
    assert run.status == SyncRun.Status.SUCCEEDED
    assert set(soda_server.app_tokens) == {"s3cret-t0ken"}
    assert all("app_token" not in r.raw_query for r in soda_server.requests)
    assert "s3cret-t0ken" not in caplog.text
    stored_run = SyncRun.objects.filter(pk=run.pk).values().get()
    assert "s3cret-t0ken" not in repr(stored_run)


@pytest.mark.parametrize("soda_server", [{"rows": 200, "app_token": "right"}], indirect=True)
def test_a_rejected_token_fails_the_run_without_showing_it(soda_server, caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(SyncError, match="403") as excinfo:
        sync_from(soda_server, client={"app_token": "wrong-t0ken"})
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    for text in (str(excinfo.value), run.error_message, caplog.text):
        assert "wrong-t0ken" not in text


def test_an_unreachable_socrata_fails_with_a_clear_error():
    client = SocrataClient("http://127.0.0.1:1", max_attempts=2, backoff_factor=0.001)
    source = sync.SocrataSource(client=client, dataset="uvpi-gqnh")
    with pytest.raises(SyncError, match=r"127\.0\.0\.1:1"):
        sync.run(source=source, dataset="uvpi-gqnh")
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert "127.0.0.1:1" in run.error_message
    assert run.finished_at is not None


def test_data_version_changes_only_when_data_does(small_server):
    sync_from(small_server)
    after_first = cache.data_version().number
    sync_from(small_server, full=True)
    assert cache.data_version().number == after_first
    small_server.update_rows(3, health="Poor")
    sync_from(small_server)
    assert cache.data_version().number > after_first


def test_dry_run_writes_nothing_but_reports_what_it_would_do(small_server):
    run = sync_from(small_server, dry_run=True)
    assert run.dry_run
    assert (run.rows_fetched, run.rows_inserted) == (600, 600)
    assert not Tree.objects.exists()
    assert sync.last_complete_run(small_server.dataset) is None  # the next run is full


def test_republish_rewrites_timestamps_and_nothing_else(small_server):
    sync_from(small_server)
    small_server.republish()
    run = sync_from(small_server)
    assert run.rows_updated == 600
    assert stored() == expected(small_server)


@pytest.mark.parametrize(
    ("option", "value"), [("page_size", 0), ("page_size", 50_001), ("limit", 0)]
)
def test_bad_options_are_refused_before_anything_runs(small_server, option, value):
    with pytest.raises(SyncError, match="must be"):
        sync_from(small_server, **{option: value})
    assert not SyncRun.objects.exists()


def test_a_server_that_refuses_csv_is_read_as_json(small_server, caplog):
    small_server.respond_with(404, {"error": True, "message": "no such format"}, offset=0)
    with caplog.at_level(logging.WARNING):
        run = sync_from(small_server)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.rows_inserted == 600
    assert "refused CSV (HTTP 404); reading JSON" in caplog.text
    assert small_server.requests[-1].path.endswith(".json")


def _hold_sync_lock(other: psycopg.Connection) -> int:
    other.execute("SELECT pg_advisory_lock(%s)", [sync.ADVISORY_LOCK_ID])
    (pid,) = other.execute("SELECT pg_backend_pid()").fetchone()
    return pid


def test_a_refused_run_names_the_run_holding_the_lock(small_server):
    with other_connection() as other:
        pid = _hold_sync_lock(other)
        holder = SyncRun.objects.create(dataset=small_server.dataset, mode="full", backend_pid=pid)
        # Newer and also marked running, but holding nothing (say, another refused run).
        SyncRun.objects.create(dataset=small_server.dataset, mode="full")
        with pytest.raises(SyncAlreadyRunning, match=rf"\(run {holder.pk}, started "):
            sync_from(small_server)


def test_a_refused_run_names_a_lock_holder_without_a_run_by_its_pid(small_server):
    with other_connection() as other:
        pid = _hold_sync_lock(other)
        with pytest.raises(SyncAlreadyRunning, match=rf"Postgres backend {pid} holds the lock"):
            sync_from(small_server)


def test_the_run_holding_the_lock_records_its_backend_pid(small_server):
    run = sync_from(small_server)
    assert run.backend_pid is not None
    assert SyncRun.objects.get(pk=run.pk).backend_pid == run.backend_pid


# --- upstream changing while a run pages (issue 10, findings 1 and 2) ----------------------


def test_an_incremental_run_stays_exact_while_upstream_updates_under_it(soda_server_factory):
    """Finding 1, scaled down: a bulk update, then more updates while the run pages."""
    server = soda_server_factory(rows=3000)
    sync_from(server)
    bulk = server.update_rows(2000)  # T3: all with one :updated_at
    rng = random.Random(10)
    during = rng.sample(bulk, 300) + rng.sample(sorted(set(server.tree_ids()) - set(bulk)), 30)
    server.on_page_request(lambda s: s.update_rows(during, health="Fair"), nth=4)  # T4
    run = sync_from(server, page_size=200)
    assert server.pending_page_hooks == 0  # the updates really came mid-run
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.rows_rejected == 0
    assert differences(server) == {}
    after = sync_from(server)
    assert (after.mode, after.rows_fetched) == (SyncRun.Mode.INCREMENTAL, 0)


def test_a_full_run_deletes_no_live_tree_while_upstream_deletes_and_inserts(
    soda_server_factory,
):
    """Finding 2, scaled down: deletes and inserts during a full run, the count unchanged."""
    server = soda_server_factory(rows=3000)
    sync_from(server)
    ordered = [int(row["tree_id"]) for row in server.rows()]  # :id order
    gone = ordered[100:250] + ordered[1500:1650]  # behind and ahead of the cursor
    server.on_page_request(lambda s: (s.delete_rows(gone), s.add_rows(300)), nth=4)
    run = sync_from(server, full=True, page_size=200)
    assert server.pending_page_hooks == 0
    assert run.status == SyncRun.Status.SUCCEEDED
    stored_ids = set(Tree.objects.values_list("tree_id", flat=True))
    live = set(server.tree_ids())
    assert live <= stored_ids  # no live tree deleted, every inserted one stored
    assert stored_ids - live <= set(gone)
    assert run.rows_deleted == 150  # the ones ahead of the cursor: confirmed absent
    again = sync_from(server, full=True, page_size=200)
    assert again.rows_deleted == 150  # those it had seen before they went
    assert differences(server) == {}


def test_a_full_run_ends_exact_when_rows_behind_its_cursor_change(soda_server_factory):
    """The watermark: rows updated behind the :id cursor must not be left behind it."""
    server = soda_server_factory(rows=1000)
    sync_from(server)
    ordered = [int(row["tree_id"]) for row in server.rows()]
    behind, ahead = ordered[:50], ordered[900:950]
    server.on_page_request(lambda s: s.update_rows(behind + ahead, health="Poor"), nth=5)
    run = sync_from(server, full=True, page_size=100)
    assert server.pending_page_hooks == 0
    assert differences(server) == {}
    assert run.watermark == datetime.datetime.fromisoformat(server.last_updated_at)
    assert sync_from(server).rows_fetched == 0


def test_a_first_load_from_a_server_that_ignores_order_fails_and_writes_nothing(small_server):
    """Rows served in no order: each page's last key jumps ahead and the cursor passes
    over rows never served. Found by the red team: 1,215 of 3,000 trees, exit 0."""
    small_server.ignore_order()
    with pytest.raises(SyncError, match=r"\$order"):
        sync_from(small_server, page_size=50)
    assert Tree.objects.count() == 0
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


def test_an_incremental_run_from_a_server_that_ignores_order_fails_and_keeps_its_watermark(
    small_server,
):
    first = sync_from(small_server)
    small_server.update_rows(300, health="Poor")  # one :updated_at: only :id orders them
    small_server.ignore_order()
    with pytest.raises(SyncError, match=r"\$order"):
        sync_from(small_server, page_size=20)
    small_server.ignore_order(False)
    again = sync_from(small_server)
    assert again.mode == SyncRun.Mode.INCREMENTAL
    assert again.watermark > first.watermark
    assert differences(small_server) == {}


def test_an_incremental_run_whose_pages_end_early_fails_instead_of_passing_rows_by(
    small_server,
):
    """Rows sharing one :updated_at, and the server keeps answering one page empty: the
    run used to succeed with the rows before it, its watermark already at that stamp, so
    no later run asked for the rest."""
    sync_from(small_server)
    small_server.update_rows(300)
    small_server.short_page(0, times=5, offset=100)
    with pytest.raises(SyncError, match="skipped rows"):
        sync_from(small_server, page_size=50)
    small_server.clear_faults()
    sync_from(small_server)
    assert differences(small_server) == {}


def test_a_tree_fetched_twice_in_one_run_keeps_its_newest_version(small_server):
    sync_from(small_server)
    changed = small_server.update_rows(100, health="Poor")
    first_page = [t for t in (int(r["tree_id"]) for r in small_server.rows()) if t in changed]
    small_server.on_page_request(lambda s: s.update_rows(first_page[:5], health="Fair"), nth=2)
    run = sync_from(small_server, page_size=20)
    assert run.rows_fetched == 105
    assert (run.rows_rejected, run.rows_updated, run.rows_unchanged) == (0, 100, 0)
    assert set(
        Tree.objects.filter(tree_id__in=first_page[:5]).values_list("health", flat=True)
    ) == {"Fair"}
    assert differences(small_server) == {}


def test_a_full_run_keeps_a_tree_its_pages_missed_but_socrata_still_has(small_server):
    sync_from(small_server)
    missed = int(small_server.rows()[300]["tree_id"])
    # A page that comes back without one of its rows (a glitch the keyset cannot see).
    body = small_server.rows()
    small_server.respond_with(
        200,
        [row for row in body if int(row["tree_id"]) != missed],
        headers={"X-SODA2-Fields": json.dumps(list(body[0]))},
        offset=0,
    )
    run = sync_from(small_server, full=True, client={"format": "json"}, page_size=50_000)
    assert run.rows_deleted == 0
    assert Tree.objects.filter(tree_id=missed).exists()
    asked = [r.query.get("$where", "") for r in small_server.requests]
    assert f"tree_id in ({missed})" in asked


def test_a_full_run_that_would_delete_too_much_fails_and_writes_nothing(small_server):
    sync_from(small_server)
    before = table()
    small_server.delete_rows(61)  # just over 10% of 600
    with pytest.raises(MassDeleteRefused, match=r"61 of the 600 stored trees \(10\.2%\)"):
        sync_from(small_server, full=True)
    assert table() == before
    failed = SyncRun.objects.latest("started_at")
    assert failed.status == SyncRun.Status.FAILED
    assert "61 of the 600" in failed.error_message
    assert "nothing was written" in failed.error_message


def test_a_mass_delete_goes_through_when_allowed(small_server):
    sync_from(small_server)
    gone = small_server.delete_rows(200)
    run = sync_from(small_server, full=True, allow_mass_delete=True)
    assert run.rows_deleted == 200
    assert not Tree.objects.filter(tree_id__in=gone).exists()
    assert "Deleted 200 of 600 trees" in run.warnings[0]


def test_a_delete_within_the_limit_needs_no_permission(small_server):
    sync_from(small_server)
    small_server.delete_rows(60)
    assert sync_from(small_server, full=True).rows_deleted == 60


# --- convergence, as a property (issue 10, deliver 2) --------------------------------------


def _mutate(server, *, rng: random.Random) -> None:
    """One random change upstream: updates (one :updated_at each call), inserts, deletes."""
    kind = rng.choice(["update", "update", "update_some", "add", "delete", "republish_like"])
    if kind == "update":
        server.update_rows(rng.randint(1, 60))
    elif kind == "update_some":
        server.update_rows(rng.randint(1, 10), health=rng.choice(["Good", "Fair", "Poor"]))
    elif kind == "add":
        server.add_rows(rng.randint(1, 25))
    elif kind == "delete":
        server.delete_rows(rng.randint(1, 12))
    else:
        server.update_rows(rng.randint(100, 250))  # many rows sharing one :updated_at


def _fault(server, rng: random.Random, page_size: int) -> None:
    offset = page_size * rng.randint(0, 6)
    kind = rng.choice(["500", "drop", "short", "truncate", "none"])
    if kind == "500":
        server.fail(500, times=rng.randint(1, 3), offset=offset)
    elif kind == "drop":
        server.drop_connection(times=rng.randint(1, 3), offset=offset)
    elif kind == "short":
        server.short_page(rng.randint(0, page_size - 1), offset=offset)
    elif kind == "truncate":
        server.truncate_body(offset=offset, content_length=rng.random() < 0.5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_syncs_converge_on_upstream_whatever_changes_during_them(soda_server_factory, seed):
    """Rounds of random upstream changes, between runs and during them (page hooks), with
    faults (500s, dropped connections, short and cut pages), and default or full runs; a run
    may fail. No run deletes a live tree, a failed one writes nothing, and once upstream is
    quiet one default run leaves every upstream tree stored exactly (a full run then also
    drops the trees deleted upstream, which only it can see)."""
    rng = random.Random(seed)
    server = soda_server_factory(rows=400, seed=seed)
    deleted_upstream: set[int] = set()
    original_delete = server.delete_rows

    def delete_rows(which):
        gone = original_delete(which)
        deleted_upstream.update(gone)
        return gone

    server.delete_rows = delete_rows
    for _ in range(10):
        for _ in range(rng.randint(0, 3)):
            _mutate(server, rng=rng)
        page_size = rng.choice([25, 40, 64])
        for _ in range(rng.randint(1, 4)):
            mutate = functools.partial(_mutate, rng=random.Random(rng.random()))
            server.on_page_request(mutate, nth=rng.randint(1, 4))
        for _ in range(rng.randint(0, 2)):
            _fault(server, rng, page_size)
        full = rng.random() < 0.4
        before = stored_table()
        try:
            run = sync_from(server, full=full, page_size=page_size, client={"max_attempts": 3})
        except SyncError:
            assert stored_table() == before  # a failed run writes nothing
        else:
            assert run.status == SyncRun.Status.SUCCEEDED
            gone_here = before.keys() - stored_table().keys()
            assert gone_here <= deleted_upstream  # no run ever deleted a live tree
        server.clear_faults()  # also unfired page hooks: upstream goes quiet
    run = sync_from(server)
    assert run.status == SyncRun.Status.SUCCEEDED
    stored, expected = stored_table(), expected_table(server)
    assert {t: row for t, row in stored.items() if t in expected} == expected
    assert stored.keys() - expected.keys() <= deleted_upstream  # only a full run sees those
    sync_from(server, full=True, allow_mass_delete=True)
    assert differences(server) == {}


@pytest.mark.parametrize(
    ("fmt", "value", "reason"),
    [
        ("csv", "12\x00 MAIN STREET", "address holds a NUL byte"),
        ("csv", "12 M\udcffIN STREET", "address is not valid UTF-8"),  # served as a raw 0xFF
        ("json", "12\x00 MAIN STREET", "address holds a NUL byte"),  # served as \u0000
        ("json", "12 M\udcffIN STREET", "address holds a lone UTF-16 surrogate escape"),
    ],
    ids=["csv-nul", "csv-0xff", "json-u0000", "json-udcff"],
)
def test_rows_with_bytes_postgres_cannot_hold_are_rejected_and_every_run_goes_on(
    soda_server_factory, fmt, value, reason
):
    server = soda_server_factory(rows=300)
    [bad] = server.update_rows(server.tree_ids()[150:151], address=value)
    run = sync_from(server, page_size=100, client={"format": fmt})
    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    assert (run.rows_fetched, run.rows_inserted, run.rows_rejected) == (300, 299, 1)
    [sample] = run.rejection_samples
    assert (sample["tree_id"], sample["reason"]) == (str(bad), reason)
    assert server.rows()[sample["row"] - 1]["tree_id"] == str(bad)  # the right row is named
    again = sync_from(server, full=True, client={"format": fmt})
    assert again.status == SyncRun.Status.SUCCEEDED
    assert (again.rows_rejected, again.rows_deleted) == (1, 0)
    assert Tree.objects.count() == 299


def test_a_full_run_stays_exact_on_a_portal_that_refuses_max(small_server):
    sync_from(small_server)
    small_server.update_rows(50)
    ordered = [int(row["tree_id"]) for row in small_server.rows()]
    small_server.respond_with(
        400, {"code": "query.compiler.malformed", "error": True, "message": "no max", "data": {}}
    )  # the first request of a full run: max(:updated_at)
    small_server.on_page_request(lambda s: s.update_rows(ordered[:20], health="Poor"), nth=3)
    run = sync_from(small_server, full=True, page_size=100)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert differences(small_server) == {}

"""A first load (the tree table empty) keeps the API answering, and leaves the schema as it was.

The load goes into a table of its own and is swapped in at the end (trees.loader.FirstLoad).
These tests hold a real first load mid-run (the fake SODA server keeps a page request
waiting) and look at the database from other connections meanwhile.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.db import connection

from tests.counts import counted_trees, tree_counts
from tests.db import other_connection
from tests.fakes.soda import FakeSodaServer, Hold
from trees import sync
from trees.exceptions import SyncError
from trees.loader import LOAD_TABLE, TREE_TABLE
from trees.models import SyncRun, Tree
from trees.socrata import SocrataClient

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 30  # seconds any awaited event may take on a loaded machine


def source_for(server: FakeSodaServer) -> sync.SocrataSource:
    client = SocrataClient(server.url, backoff_factor=0.001, backoff_max=0.01)
    return sync.SocrataSource(client=client, dataset=server.dataset)


class Background:
    """sync.run in a thread of its own (its own connection); the outcome once joined."""

    def __init__(self, server: FakeSodaServer, **options) -> None:
        self.run: SyncRun | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, args=(server, options), daemon=True)

    def _work(self, server: FakeSodaServer, options: dict) -> None:
        try:
            self.run = sync.run(source=source_for(server), dataset=server.dataset, **options)
        except BaseException as exc:  # handed to the test, which asserts on it
            self.error = exc
        finally:
            connection.close()

    def join(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the sync did not finish"


@contextmanager
def held_first_load(server: FakeSodaServer, **options) -> Iterator[tuple[Hold, Background]]:
    """A first load stopped after its second page, with its transaction open."""
    hold = server.hold(offset=200)
    load = Background(server, page_size=100, **options)
    load.thread.start()
    try:
        assert hold.arrived.wait(DEADLINE), "the load never asked for its third page"
        yield hold, load
    finally:
        hold.release()
        load.join()


def schema() -> dict[str, list]:
    """The tree table's indexes, constraints and triggers, as the catalogs spell them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY 1",
            [TREE_TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred "
            "FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1",
            [TREE_TABLE],
        )
        constraints = cursor.fetchall()
        # Internal (foreign key) triggers are named after their oid: compare what they do.
        cursor.execute(
            "SELECT CASE WHEN tgisinternal THEN '' ELSE tgname END, tgenabled, "
            "regexp_replace(pg_get_triggerdef(oid), '\"RI_ConstraintTrigger_[a-z]_\\d+\"', '') "
            "FROM pg_trigger WHERE tgrelid = %s::regclass OR tgconstrrelid = %s::regclass "
            "ORDER BY 1, 3",
            [TREE_TABLE, TREE_TABLE],
        )
        triggers = cursor.fetchall()
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [TREE_TABLE],
        )
        columns = cursor.fetchall()
    return {
        "indexes": indexes,
        "constraints": constraints,
        "triggers": triggers,
        "columns": columns,
    }


def load_table_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [LOAD_TABLE])
        return cursor.fetchone()[0]


@pytest.fixture
def server(soda_server_factory) -> FakeSodaServer:
    return soda_server_factory(rows=600, seed=3)


def test_the_tree_table_answers_at_once_during_a_first_load(server):
    with held_first_load(server), other_connection() as reader:
        # What an API request would wait on: the table's lock. It must not wait at all.
        reader.execute("SET lock_timeout = '1s'")
        reader.execute("SET statement_timeout = '2s'")
        count = reader.execute(f"SELECT count(*) FROM {TREE_TABLE}").fetchone()[0]
        filtered = reader.execute(
            f"SELECT tree_id FROM {TREE_TABLE} WHERE borough = 'Queens' ORDER BY tree_id LIMIT 50"
        ).fetchall()
        assert (count, filtered) == (0, [])  # the previous (empty) table, until the swap
    assert Tree.objects.count() == 600


def test_a_first_load_leaves_the_schema_exactly_as_migrations_made_it(server):
    before = schema()
    run = sync.run(source=source_for(server), dataset=server.dataset, page_size=100)
    assert run.rows_inserted == 600
    assert schema() == before
    assert not load_table_exists()
    assert tree_counts() == counted_trees()


def test_after_a_first_load_incremental_runs_count_and_migrations_find_their_names(server):
    sync.run(source=source_for(server), dataset=server.dataset, page_size=100)
    server.update_rows(20, health="Poor")
    server.add_rows(5)
    run = sync.run(source=source_for(server), dataset=server.dataset)
    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert (run.rows_inserted, run.rows_updated) == (5, 20)
    assert tree_counts() == counted_trees()  # the count triggers are back, and fire
    before = schema()
    # Migration 0003 drops its triggers by name; a later migration drops indexes by name.
    call_command("migrate", "trees", "0002", verbosity=0)
    call_command("migrate", "trees", verbosity=0)
    from django.db import connection as db

    with db.schema_editor() as editor:
        for index in Tree._meta.indexes:
            editor.remove_index(Tree, index)
            editor.add_index(Tree, index)
    assert schema() == before


def test_a_failed_first_load_leaves_the_empty_table_untouched(server):
    before = schema()
    server.fail(500, times=100, offset=200)
    with pytest.raises(SyncError, match=r"\b500\b"):
        sync.run(source=source_for(server), dataset=server.dataset, page_size=100)
    assert schema() == before
    assert not load_table_exists()
    assert Tree.objects.count() == 0
    assert tree_counts() == {}


def test_trees_written_elsewhere_during_a_first_load_fail_it_and_are_kept(server):
    with held_first_load(server) as (_, load), other_connection() as writer:
        writer.execute(
            f"INSERT INTO {TREE_TABLE} (tree_id, status, borough, latitude, longitude, "
            "curb_loc, health, steward, guards, sidewalk, user_type, problems, address, "
            "zipcode, zip_city, nta, nta_name, state, census_tract, socrata_id) "
            "VALUES (1, 'Alive', 'Queens', 40.7, -73.8, "
            "'', '', '', '', '', '', '', '', '', '', '', '', '', '', '')"
        )
    assert isinstance(load.error, SyncError)
    assert "during the first load" in str(load.error)
    assert list(Tree.objects.values_list("tree_id", flat=True)) == [1]
    assert not load_table_exists()


def test_readyz_reports_a_first_load_in_progress_and_stays_ready(server, client):
    assert client.get("/readyz").json()["sync"] == "idle"
    with held_first_load(server):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["sync"] == "first load in progress"
    assert client.get("/readyz").json()["sync"] == "idle"


@pytest.fixture
def view_on_trees():
    """A view reading the tree table: the swap would have to drop it."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE VIEW bench_tree_ids AS SELECT tree_id FROM {TREE_TABLE}")
    yield "bench_tree_ids"
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS bench_tree_ids")


def test_a_table_something_depends_on_is_loaded_in_place_without_blocking(server, view_on_trees):
    before = schema()
    with held_first_load(server) as (_, load), other_connection() as reader:
        reader.execute("SET lock_timeout = '1s'")
        assert reader.execute(f"SELECT count(*) FROM {view_on_trees}").fetchone() == (0,)
    assert load.error is None
    assert any(view_on_trees in warning for warning in load.run.warnings)
    assert Tree.objects.count() == 600
    assert schema() == before
    assert tree_counts() == counted_trees()

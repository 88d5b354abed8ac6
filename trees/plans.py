"""A second plan for a page query whose first plan bet on matches that are not there.

Postgres plans `... WHERE <filters> ORDER BY tree_id LIMIT 51` as if the filters held
independently of each other: it walks the tree_id index and expects the 51st match after a
few thousand rows. For filters that seldom or never hold together (`borough=Manhattan&
zipcode=10451`, a problem text and a flag that exclude each other, dead trees with a
steward) the matches are few or none, and that walk reads the whole table: 0.1-0.4 s where
every other page takes a few milliseconds (benchmarks/bench_api.py, filters_two). The
planner cannot know better: its statistics are per column.

So the first plan gets API_PLAN_SWITCH_MS. A plan cancelled then has found fewer than 51
matches in most of a second's worth of rows, so matches are sparse, and the same query runs
again without ordered index scans: Postgres then reads the matching rows from each filter's
own index (bitmap scans) and sorts those few. The rows are the same either way, only the
plan differs; a query that is slow under both plans costs API_PLAN_SWITCH_MS more.
"""

import contextlib

import psycopg
from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import QuerySet

# The first plan's limit, and the value to put back afterwards, in one round trip.
_LIMIT_SQL = (
    "SELECT before, set_config('statement_timeout', %s, false) "
    "FROM (SELECT current_setting('statement_timeout') AS before OFFSET 0) AS current"
)
_RESTORE_SQL = "SELECT set_config('statement_timeout', %s, false)"
_NO_INDEX_SCANS_SQL = "SET enable_indexscan = off"
_INDEX_SCANS_SQL = "RESET enable_indexscan"


def rows(query: QuerySet) -> list:
    """The rows of `query`, by a second plan if the first one takes longer than
    API_PLAN_SWITCH_MS (0: one plan, whatever it takes)."""
    milliseconds = settings.API_PLAN_SWITCH_MS
    if not milliseconds or query.query.is_empty():  # (.none(): no query at all)
        return list(query)
    before = _execute(_LIMIT_SQL, [f"{milliseconds}ms"])[0]
    try:
        # Within a transaction, a cancelled statement aborts it: a savepoint keeps it usable.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            return list(query)
    except OperationalError as error:
        if not isinstance(error.__cause__, psycopg.errors.QueryCanceled):
            raise
    finally:
        _restore(_RESTORE_SQL, [before])
    _execute(_NO_INDEX_SCANS_SQL)
    try:
        return list(query)
    finally:
        _restore(_INDEX_SCANS_SQL)


def _execute(sql: str, params: list | None = None) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def _restore(sql: str, params: list | None = None) -> None:
    """Put a setting back; on a connection that has failed, Django closes it after the
    request anyway (and the settings go with it), and the first error is the one to see."""
    with contextlib.suppress(DatabaseError):
        _execute(sql, params)

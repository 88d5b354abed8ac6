"""The data version: a number that changes exactly when the census data changes.

The API puts it in every cache key, so a sync that changes rows makes every older cached
response unreachable at once, and nothing has to be found and deleted (no KEYS/SCAN).

Postgres alone holds it (`DataVersion`, bumped in the same transaction as the rows it
describes), and the API reads it from there on every cacheable request: one primary-key
read on the connection the worker keeps open. A copy anywhere else (Redis, a process's
memory) would have to learn of each commit, and whatever fails in between (Redis paused,
restarted, flushed or unreachable when the sync commits; the instant between a commit and
its publication) would leave it naming the old data, with nothing to correct it. Read from
Postgres, the version a request sees is always that of the data it would read.
"""

import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from django.db import connection, transaction
from django.db.models import DateTimeField, F, Func, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from psycopg import pq

from trees.models import DataVersion, microseconds_now

logger = logging.getLogger(__name__)

# The version, and the time of the change in whole seconds (all Last-Modified can say).
_VERSION_SQL = (
    "SELECT version, floor(extract(epoch FROM changed_at))::bigint "  # noqa: S608 (constants)
    f'FROM "{DataVersion._meta.db_table}" WHERE id = {DataVersion.SINGLETON_PK}'
)
_STATEMENT = b"trees_data_version"


@dataclass(frozen=True)
class Version:
    number: int
    changed_at: datetime


class _Reader(threading.local):
    """Per thread (Django's connections are): which libpq connection holds the prepared
    statement, and whether preparing works at all (a pooler in transaction mode, such as
    PgBouncer without max_prepared_statements, loses prepared statements between calls)."""

    prepared_on: pq.abc.PGconn | None = None
    prepare = True


_reader = _Reader()


def data_version() -> Version:
    """The current data version, read from Postgres.

    On the hot path of every cached response, so it is one prepared statement sent through
    libpq (psycopg.pq) on Django's open connection. benchmarks/bench_api.py's cached
    scenarios pay for it: through a Django or psycopg cursor it cost 3.5 times as much, and
    a Django cursor adds a round trip (its `SELECT 1` health check before the first query of
    a request on a reused connection). That check is what keeps a connection Postgres has
    dropped from failing a request, so a failure here does what it would: reconnect and ask
    again, through Django, whose OperationalError (Postgres down) the API answers with 503.
    """
    connection.ensure_connection()
    row = _read(connection.connection.pgconn)
    if row is None:  # e.g. Postgres restarted since the last request: connect anew
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(_VERSION_SQL)
            row = cursor.fetchone()
    if not row:  # the migration creates the row; only a hand-made delete loses it
        DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
        return data_version()
    return _version_of(row)


class DataVersionRead:
    """The data version, asked of Postgres on entering the block and read on leaving it.

    The question goes out first and the answer is read last, so whatever the block does in
    between (the Redis round trip of a cached response: ResponseCacheMiddleware) overlaps
    Postgres's answer instead of following it; benchmarks/bench_api.py's cached scenarios
    measure the gain. The block must not use Django's database connection. Without a
    statement prepared on this connection yet, or if anything fails, `version` comes from
    data_version(), with its recovery. Raises DatabaseError (on leaving) as data_version does.

        with DataVersionRead() as read:
            ...  # Redis, not Postgres
        read.version
    """

    version: Version

    def __enter__(self) -> "DataVersionRead":
        self._asked_on: pq.abc.PGconn | None = None
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        if _reader.prepare and _reader.prepared_on is pgconn:
            try:
                pgconn.send_query_prepared(_STATEMENT, [])
                pgconn.flush()
                self._asked_on = pgconn
            except psycopg.Error:
                _reader.prepared_on = None
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        row = _receive(self._asked_on) if self._asked_on is not None else None
        if exc_type is None:  # (an exception in the block goes on; the answer was drained)
            self.version = _version_of(row) if row else data_version()


def _receive(pgconn: pq.abc.PGconn) -> tuple[bytes, bytes] | None:
    """The answer to the query sent by DataVersionRead, every result read so the connection
    is free again; None if it failed or found no row (data_version() then asks again)."""
    try:
        result = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass
    except psycopg.Error:
        _reader.prepared_on = None
        return None
    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
        _reader.prepared_on = None
        return None
    if result.ntuples == 0:
        return None
    return result.get_value(0, 0), result.get_value(0, 1)


def _version_of(row: tuple) -> Version:
    number, changed_at = row
    return Version(int(number), datetime.fromtimestamp(int(changed_at), tz=UTC))


def _read(pgconn: pq.abc.PGconn) -> tuple[bytes, bytes] | tuple[()] | None:
    """The row (as text), () if there is none, or None if the connection failed."""
    try:
        if not _reader.prepare:
            result = pgconn.exec_(_VERSION_SQL.encode())
        else:
            if _reader.prepared_on is not pgconn:
                pgconn.prepare(_STATEMENT, _VERSION_SQL.encode())  # raises if it fails
                _reader.prepared_on = pgconn
            result = pgconn.exec_prepared(_STATEMENT, [])
    except psycopg.Error:
        return None
    if result.status != pq.ExecStatus.TUPLES_OK:
        _reader.prepared_on = None
        if pgconn.status == pq.ConnStatus.OK and _reader.prepare:
            # The connection is fine, the statement is not: stop preparing, ask plainly.
            _reader.prepare = False
            return _read(pgconn)
        return None
    if result.ntuples == 0:
        return ()
    return result.get_value(0, 0), result.get_value(0, 1)


def _whole_second(value: F) -> Func:
    """date_trunc on the timestamptz itself (Django's Trunc converts to the local time zone
    first, and GREATEST would then compare a local wall-clock time with an instant)."""
    return Func(Value("second"), value, function="date_trunc", output_field=DateTimeField())


def bump_data_version() -> None:
    """Record that the data changed. Call inside the transaction that changes it.

    Nothing else is needed: readers see the new number exactly when they see the new rows,
    since both become visible at the commit.
    """
    # changed_at moves on by at least a whole second: Last-Modified (whole seconds) then
    # differs for every version, so an If-Modified-Since of older data is never a 304, even
    # for a change within the second of the last one or from a host whose clock is behind.
    changed = DataVersion.objects.filter(pk=DataVersion.SINGLETON_PK).update(
        version=Greatest(F("version") + 1, Value(microseconds_now())),
        changed_at=Greatest(
            Value(timezone.now()), _whole_second(F("changed_at")) + Value(timedelta(seconds=1))
        ),
    )
    if not changed:
        DataVersion.objects.create(pk=DataVersion.SINGLETON_PK)
    transaction.on_commit(_log_data_version)


def _log_data_version() -> None:
    logger.info("Data version is now %s", data_version().number)


def response_key(
    *, version: int, url: str, path: str, query: Iterable[tuple[str, object]], fmt: str
) -> str:
    """The cache key of one API response: the data version, then the request, normalised.

    The version comes first so that a sync that changes data moves every request to a new
    key at once: old entries are never read again and expire by their TTL (no KEYS scans).
    `query` holds the parameters as validated (trees.api.filters.normalised_query: each one
    once, OR values sorted), so two requests share a key exactly when they mean the same;
    `url` carries scheme and host because response bodies hold absolute links; `fmt` is the
    negotiated format. The request part is hashed, which bounds the key's length.
    """
    canonical = "\n".join([fmt, url, *(f"{name}={value!r}" for name, value in sorted(query))])
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return f"api:v{version}:{path}:{digest}"

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from trees.models import DataVersion, microseconds_now

logger = logging.getLogger(__name__)

_VERSION_SQL = (
    f'SELECT version, changed_at FROM "{DataVersion._meta.db_table}" '  # noqa: S608 (constants)
    f"WHERE id = {DataVersion.SINGLETON_PK}"
)


@dataclass(frozen=True)
class Version:
    number: int
    changed_at: datetime


def data_version() -> Version:
    """The current data version, read from Postgres.

    On the hot path of every cached response, so it goes straight to psycopg on Django's
    open connection: one round trip. Through Django's cursor it would be two, since the
    first query of each request on a reused connection is preceded by a `SELECT 1` health
    check (CONN_HEALTH_CHECKS). That check is what keeps a connection Postgres dropped from
    failing a request, so a failure here does what it does: reconnect and try once more,
    through Django, whose errors (OperationalError when Postgres is down) the API answers
    with a 503. benchmarks/bench_api.py's cached scenarios measure this path.
    """
    connection.ensure_connection()
    try:
        row = connection.connection.execute(_VERSION_SQL).fetchone()
    except psycopg.Error:  # e.g. the server closed the connection since the last request
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(_VERSION_SQL)
            row = cursor.fetchone()
    if row is None:  # the migration creates the row; only a hand-made delete loses it
        created, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
        row = (created.version, created.changed_at)
    return Version(*row)


def bump_data_version() -> None:
    """Record that the data changed. Call inside the transaction that changes it.

    Nothing else is needed: readers see the new number exactly when they see the new rows,
    since both become visible at the commit.
    """
    changed = DataVersion.objects.filter(pk=DataVersion.SINGLETON_PK).update(
        version=Greatest(F("version") + 1, Value(microseconds_now())), changed_at=timezone.now()
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

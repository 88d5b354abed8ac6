"""The data version: a number that changes exactly when the census data changes.

The API puts it in every cache key, so a sync that changes rows makes every older cached
response unreachable at once, and nothing has to be found and deleted (no KEYS/SCAN).

Postgres holds the truth (`DataVersion`, bumped in the same transaction as the rows it
describes). Redis holds a copy for the hot path, written after that transaction commits;
when the copy is missing (Redis restarted or flushed) it is read back from Postgres.
"""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from trees.models import DataVersion, microseconds_now

logger = logging.getLogger(__name__)

DATA_VERSION_KEY = "data-version"


@dataclass(frozen=True)
class Version:
    number: int
    changed_at: datetime

    def serialize(self) -> str:
        return f"{self.number}:{self.changed_at.timestamp()}"

    @classmethod
    def parse(cls, value: str) -> "Version":
        number, timestamp = value.split(":")
        return cls(int(number), datetime.fromtimestamp(float(timestamp), tz=UTC))


def _version_from_database() -> Version:
    # The migration creates the row; get_or_create only matters if it was deleted by hand.
    row, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
    return Version(row.version, row.changed_at)


def data_version() -> Version:
    """The current data version: from Redis when it has it, else from Postgres (and cached)."""
    cached = cache.get(DATA_VERSION_KEY)
    if cached is not None:
        try:
            return Version.parse(cached)
        except ValueError:
            logger.warning("Ignoring a malformed data version in the cache: %r", cached)
    version = _version_from_database()
    cache.set(DATA_VERSION_KEY, version.serialize(), timeout=None)
    return version


def bump_data_version() -> None:
    """Record that the data changed. Call inside the transaction that changes it.

    Redis learns the new number only once the transaction commits: before that, other
    processes still see the old rows, so they must keep the old version too.
    """
    changed = DataVersion.objects.filter(pk=DataVersion.SINGLETON_PK).update(
        version=Greatest(F("version") + 1, Value(microseconds_now())), changed_at=timezone.now()
    )
    if not changed:
        DataVersion.objects.create(pk=DataVersion.SINGLETON_PK)
    transaction.on_commit(publish_data_version)


def publish_data_version() -> None:
    """Copy the version from Postgres to Redis (a no-op, with a log line, if Redis is down)."""
    version = _version_from_database()
    cache.set(DATA_VERSION_KEY, version.serialize(), timeout=None)
    logger.info("Data version is now %s", version.number)


def response_key(
    *, version: int, url: str, path: str, query: Iterable[tuple[str, str]], fmt: str
) -> str:
    """The cache key of one API response: the data version, then the request, normalised.

    The version comes first so that a sync that changes data moves every request to a new
    key at once: old entries are never read again and expire by their TTL (no KEYS scans).
    The query's pairs are sorted, so parameter order does not matter; `url` carries scheme
    and host because response bodies hold absolute links; `fmt` is the negotiated format.
    The request part is hashed, which bounds the key's length whatever the query holds.
    """
    canonical = "\n".join([fmt, url, urlencode(sorted(query))])
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return f"api:v{version}:{path}:{digest}"

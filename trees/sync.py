"""The sync service: bring the census from a page source into Postgres, and record the run.

What is committed when: everything a run writes (trees, species, deletions, the data
version) is one transaction, committed only when the run completes. A run that fails or is
interrupted (Ctrl-C, SIGTERM, a lost connection) rolls back entirely: the database keeps
the previous sync's data, untouched, and the next run starts from the same watermark. The
SyncRun row itself is written outside that transaction, so the admin shows the run as
running while it works and failed (with the reason) if it does not finish.

Only one sync runs at a time: a Postgres advisory lock, held by the session, is released
by Postgres itself if the process dies.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from trees import cache
from trees.columns import COLUMNS, ColumnMap, map_headers
from trees.exceptions import SyncAlreadyRunning, SyncError
from trees.loader import TREE_TABLE, FirstLoad, Loader, PageResult, table_is_empty
from trees.models import SyncRun
from trees.socrata import (
    Page,
    SocrataBadResponse,
    SocrataClient,
    SocrataError,
    SocrataSchemaError,
    soql_quote,
)

logger = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one spells "nyctrees" in ASCII.
ADVISORY_LOCK_ID = 0x6E79637472656573
REJECTION_SAMPLE_SIZE = 25
# Pages of 10,000 rows (about 5 MB of CSV) keep the sync's memory flat whatever the data's
# size: a few pages are in flight at once. Socrata advises pages of 10,000 to 50,000.
DEFAULT_PAGE_SIZE = 10_000
MAX_PAGE_SIZE = 50_000  # the SODA 2.0 maximum
# Rows staged before they are checked and written together (see loader.Loader).
BATCH_ROWS = 50_000

# Answers to a .csv request that mean "this server does not do CSV" (then JSON is used).
CSV_REFUSED = frozenset({400, 404, 406, 415, 501})


class SyncInterrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM; a KeyboardInterrupt so psycopg cancels the query."""


class PageSource(Protocol):
    """Where pages come from: Socrata over HTTP, or a file on disk."""

    description: str  # for SyncRun.source: a URL or a path, never a token
    supports_incremental: bool

    def count(self, *, where: str | None = None) -> int | None: ...

    def pages(
        self,
        *,
        where: str | None,
        order: str,
        page_size: int,
        max_rows: int | None,
        expected_total: int | None,
    ) -> Iterator[Page]: ...


@dataclass
class SocrataSource:
    """A dataset on a Socrata portal, read through the SODA client."""

    client: SocrataClient
    dataset: str
    supports_incremental: bool = True

    @property
    def description(self) -> str:
        return self.client.resource_url(self.dataset)

    def count(self, *, where: str | None = None) -> int | None:
        return self.client.count(self.dataset, where=where)

    def pages(self, *, where, order, page_size, max_rows, expected_total) -> Iterator[Page]:
        query = {
            "where": where,
            "order": order,
            "page_size": page_size,
            "max_rows": max_rows,
            "expected_total": expected_total,
        }
        pages = self.client.iter_pages(self.dataset, **query)
        try:
            first = next(pages, None)
        except SocrataSchemaError:
            raise
        except SocrataBadResponse as exc:
            # A portal (or a proxy in front of it) that does not serve .csv: JSON carries the
            # same rows, only slower to load, so the run goes on with it.
            if self.client.format != "csv" or exc.status not in CSV_REFUSED:
                raise
            logger.warning("%s refused CSV (HTTP %s); reading JSON", self.description, exc.status)
            self.client.format = "json"
            pages = self.client.iter_pages(self.dataset, **query)
            first = next(pages, None)
        if first is not None:
            yield first
        yield from pages


@dataclass
class Progress:
    rows: int
    total: int | None


@dataclass
class Outcome:
    """What a run did, kept in memory while it works and copied onto its SyncRun."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rejected: int = 0
    changed: bool = False
    newest: datetime | None = None
    rejections: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.fetched - self.rejected - self.inserted - self.updated

    def add(self, page: PageResult) -> None:
        self.fetched += page.fetched
        self.inserted += page.inserted
        self.updated += page.updated
        self.rejected += page.rejected
        self.changed = self.changed or page.changed
        if page.newest is not None and (self.newest is None or page.newest > self.newest):
            self.newest = page.newest
        room = REJECTION_SAMPLE_SIZE - len(self.rejections)
        self.rejections.extend(page.rejections[:room])

    def warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)


def run(
    *,
    source: PageSource,
    dataset: str,
    full: bool | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    limit: int | None = None,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> SyncRun:
    """Sync `dataset` from `source`; returns the finished SyncRun or raises SyncError.

    `full=None` chooses: incremental when an earlier complete run left a watermark,
    full otherwise. A full run deletes trees the source no longer has, but only after
    fetching everything the source said it had.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SyncError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    if limit is not None and limit < 1:
        raise SyncError(f"--limit must be a positive number of rows, not {limit}")
    previous = last_complete_run(dataset)
    if full is None:
        full = previous is None or not source.supports_incremental
    watermark = None if full else previous.watermark
    sync_run = SyncRun.objects.create(
        dataset=dataset,
        source=source.description,
        mode=SyncRun.Mode.FULL if full else SyncRun.Mode.INCREMENTAL,
        dry_run=dry_run,
    )
    outcome = Outcome()
    try:
        with advisory_lock(sync_run):
            _mark_abandoned_runs(exclude=sync_run)
            complete = _sync(
                source=source,
                full=full,
                watermark=watermark,
                page_size=page_size,
                limit=limit,
                dry_run=dry_run,
                outcome=outcome,
                progress=progress,
            )
    except SyncAlreadyRunning as exc:
        _finish(sync_run, outcome, error=str(exc))
        raise
    except SocrataError as exc:
        _finish(sync_run, outcome, error=f"Socrata: {exc}")
        raise SyncError(f"Socrata: {exc}") from exc
    except SyncError as exc:
        _finish(sync_run, outcome, error=str(exc))
        raise
    except KeyboardInterrupt as exc:
        reason = str(exc) or "interrupted (Ctrl-C)"
        _finish(sync_run, outcome, error=f"{reason}; nothing was written")
        raise
    except DatabaseError as exc:
        _finish(sync_run, outcome, error=f"database error: {exc}; nothing was written")
        raise SyncError(f"database error: {exc}") from exc
    except Exception as exc:
        # A bug, not a condition we expect: record it, then let it surface with its traceback.
        _finish(sync_run, outcome, error=f"unexpected error: {exc!r}; nothing was written")
        raise
    if complete:
        newest = [w for w in (watermark, outcome.newest) if w is not None]
        sync_run.watermark = max(newest) if newest else None
    _finish(sync_run, outcome)
    return sync_run


def last_complete_run(dataset: str) -> SyncRun | None:
    """The newest successful, complete, real run: its watermark is where the next one starts."""
    return (
        SyncRun.objects.filter(
            dataset=dataset,
            status=SyncRun.Status.SUCCEEDED,
            dry_run=False,
            watermark__isnull=False,
        )
        .order_by("-started_at", "-id")
        .first()
    )


def _sync(
    *,
    source: PageSource,
    full: bool,
    watermark: datetime | None,
    page_size: int,
    limit: int | None,
    dry_run: bool,
    outcome: Outcome,
    progress: Callable[[Progress], None] | None,
) -> bool:
    """Fetch and load; returns whether the run saw everything the source had."""
    where = None
    if watermark is not None:
        # Socrata's literal: UTC without the zone. Offset paging in this fixed window with
        # a stable order loses no row that shares one :updated_at with others.
        stamp = watermark.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        where = f":updated_at > {soql_quote(stamp)}"
    total = source.count(where=where)
    if total is not None and limit is not None:
        total = min(total, limit)
    if progress is not None:
        progress(Progress(rows=0, total=total))
    if where is not None and total == 0:
        logger.info("Nothing changed upstream since %s", watermark.isoformat())
        return True

    order = ":id" if where is None else ":updated_at,:id"
    pages = source.pages(
        where=where, order=order, page_size=page_size, max_rows=limit, expected_total=total
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # US-style dates in the portal's bulk CSV read as month/day/year.
            cursor.execute("SET LOCAL datestyle = 'ISO, MDY'")
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        first_load = FirstLoad() if table_is_empty() else None
        if first_load is not None:
            first_load.start()
            if first_load.warning:
                outcome.warn(first_load.warning)
        # Nothing can be missing from an empty table, so a first load tracks no keys.
        loader = Loader(
            track_seen=full and first_load is None,
            into_empty_table=first_load is not None,
            sample_size=REJECTION_SAMPLE_SIZE,
            table=TREE_TABLE if first_load is None else first_load.table,
        )
        loader.start()
        column_maps: dict[tuple[str, ...], ColumnMap] = {}
        clock = _Clock()
        fetched = 0
        for page in clock.waiting(prefetch(pages)):
            if page.row_count == 0:
                continue  # an empty page may carry no field list to check
            columns = column_maps.get(page.fields)
            if columns is None:
                columns = column_maps[page.fields] = _check_columns(page.fields, outcome)
            loader.stage(page, columns)
            if loader.staged_rows >= BATCH_ROWS:
                outcome.add(loader.flush())
            fetched += page.row_count
            if progress is not None:
                progress(Progress(rows=fetched, total=total))
        if loader.staged_rows:
            outcome.add(loader.flush())
        clock.loaded()
        complete = limit is None and (total is None or outcome.fetched >= total)
        if full and complete:
            if first_load is None:
                outcome.deleted = loader.delete_missing()
                outcome.changed = outcome.changed or outcome.deleted > 0
        elif full:
            seen = f"{outcome.fetched} of {total}" if total is not None else outcome.fetched
            outcome.warn(
                f"Fetched {seen} rows (stopped early): missing trees are not deleted "
                "after an incomplete fetch"
            )
        if first_load is not None:
            first_load.finish()
        clock.finished(rows=outcome.fetched)
        if outcome.changed and not dry_run:
            cache.bump_data_version()
        if dry_run:
            transaction.set_rollback(True)
    return complete


class _Clock:
    """Where a run's time goes: waiting for pages, loading them, and finishing (logged)."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.waited = 0.0
        self.loading = self.finishing = 0.0

    def waiting(self, pages: Iterable[Page]) -> Iterator[Page]:
        iterator = iter(pages)
        while True:
            before = time.perf_counter()
            page = next(iterator, None)
            self.waited += time.perf_counter() - before
            if page is None:
                return
            yield page

    def loaded(self) -> None:
        now = time.perf_counter()
        self.loading = now - self.started - self.waited
        self.mark = now

    def finished(self, *, rows: int) -> None:
        self.finishing = time.perf_counter() - self.mark
        logger.info(
            "Loaded %d rows: %.1f s waiting for pages, %.1f s loading, %.1f s finishing",
            rows,
            self.waited,
            self.loading,
            self.finishing,
        )


def _check_columns(fields: tuple[str, ...], outcome: Outcome) -> ColumnMap:
    """Map a page's columns; fail on a missing required one, warn about the rest."""
    columns = map_headers(fields)
    if columns.missing_required:
        names = ", ".join(
            f"{f} (sent as {' or '.join(_sources(f))})" for f in columns.missing_required
        )
        raise SyncError(f"The pages lack a required field: {names}")
    for name in columns.unknown:
        outcome.warn(f"Ignoring unknown column {name!r}")
    for name in columns.missing:
        outcome.warn(f"Expected column {name!r} is missing; it is stored empty")
    return columns


def _sources(field_name: str) -> tuple[str, ...]:
    if field_name == "borough":
        return ("boroname", "borough", "borocode")
    return next(c.sources for c in COLUMNS if c.field == field_name)


@contextmanager
def advisory_lock(sync_run: SyncRun) -> Iterator[None]:
    """Hold the session-level sync lock, or raise SyncAlreadyRunning at once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
        (locked,) = cursor.fetchone()
    if not locked:
        running = (
            SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
            .exclude(pk=sync_run.pk)
            .order_by("-started_at")
            .first()
        )
        which = ""
        if running is not None:
            which = f" (run {running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S %Z})"
        raise SyncAlreadyRunning(f"Another sync is running{which}; try again later")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        except (InterfaceError, OperationalError):
            connection.close()  # the connection is gone, and the lock with it


def _mark_abandoned_runs(*, exclude: SyncRun) -> None:
    """Runs left 'running' by a process that died: we hold the lock, so none is alive."""
    SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exclude(pk=exclude.pk).update(
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        error_message="abandoned: the process ended before the run finished",
    )


def _finish(sync_run: SyncRun, outcome: Outcome, *, error: str | None = None) -> None:
    sync_run.finished_at = timezone.now()
    sync_run.rows_fetched = outcome.fetched
    sync_run.rows_rejected = outcome.rejected
    sync_run.rejection_samples = outcome.rejections
    sync_run.warnings = outcome.warnings
    if error is None:
        sync_run.status = SyncRun.Status.SUCCEEDED
        sync_run.rows_inserted = outcome.inserted
        sync_run.rows_updated = outcome.updated
        sync_run.rows_unchanged = outcome.unchanged
        sync_run.rows_deleted = outcome.deleted
    else:
        # The transaction rolled back: whatever the counts said, nothing was written.
        sync_run.status = SyncRun.Status.FAILED
        sync_run.error_message = error
    try:
        sync_run.save()
    except (InterfaceError, OperationalError):
        # An interrupt can leave the connection unusable; a fresh one records the outcome.
        connection.close()
        sync_run.save()


_DONE = object()


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Yield from `items` while a thread fetches up to `depth` items ahead.

    Downloading the next page overlaps with Postgres loading this one. The thread only
    does HTTP (never the database), and a queue bound keeps memory flat.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def fetch() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=fetch, name="sync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from trees import cache
from trees.columns import COLUMNS, ColumnMap, map_headers
from trees.exceptions import MassDeleteRefused, SyncAlreadyRunning, SyncError
from trees.loader import TREE_TABLE, FirstLoad, Loader, PageResult, table_is_empty
from trees.models import SyncRun, Tree
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

# Stored trees a full run did not see are asked for again by tree_id, this many a request
# (about 4 KB of URL, well inside what Socrata and proxies accept).
RECHECK_BATCH = 500

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


@runtime_checkable
class LiveSource(Protocol):
    """A source that can change while a run reads it, and can be asked again (Socrata).

    A file is a snapshot and the truth about itself: it has neither method.
    """

    def newest_updated_at(self) -> str | None: ...

    def recheck(self, tree_ids: Sequence[int], *, page_size: int) -> Iterator[Page]: ...


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

    def newest_updated_at(self) -> str | None:
        return self.client.newest_updated_at(self.dataset)

    def recheck(self, tree_ids: Sequence[int], *, page_size: int) -> Iterator[Page]:
        """These trees' rows as they are now, whole; a tree deleted upstream brings none."""
        done = 0  # rows before this request's: one numbering for the whole recheck
        for start in range(0, len(tree_ids), RECHECK_BATCH):
            batch = ", ".join(str(tree_id) for tree_id in tree_ids[start : start + RECHECK_BATCH])
            where = f"tree_id in ({batch})"
            for page in self.client.iter_pages(self.dataset, where=where, page_size=page_size):
                yield replace(page, offset=done + page.offset)
            done += page.offset + page.row_count


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
    superseded: int = 0  # older versions of trees seen again later in the run
    changed: bool = False
    newest: datetime | None = None
    rejections: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.fetched - self.superseded - self.rejected - self.inserted - self.updated

    def add(self, page: PageResult) -> None:
        self.fetched += page.fetched
        self.inserted += page.inserted
        self.updated += page.updated
        self.rejected += page.rejected
        self.superseded += page.superseded
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
    full: bool = False,
    allow_mass_delete: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    limit: int | None = None,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> SyncRun:
    """Sync `dataset` from `source`; returns the finished SyncRun or raises SyncError.

    `full` answers two questions (STYLE.md): fetch everything, and delete the trees the
    source lacks? Without it, from Socrata, the run is incremental when an earlier complete
    run left a watermark, else it fetches everything and deletes what is missing; a file is
    always read whole but may hold only part of the census, so it deletes nothing. A run
    that deletes does so only after a complete fetch, only the trees the source confirms
    absent, and, unless `allow_mass_delete`, never more than `SYNC_MAX_DELETE_FRACTION` of
    the table (it fails instead, writing nothing).
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SyncError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    if limit is not None and limit < 1:
        raise SyncError(f"--limit must be a positive number of rows, not {limit}")
    try:
        previous = last_complete_run(dataset)
        fetch_all = full or previous is None or not source.supports_incremental
        delete_missing = full or (fetch_all and source.supports_incremental)
        watermark = None if fetch_all else previous.watermark
        sync_run = SyncRun.objects.create(
            dataset=dataset,
            source=source.description,
            mode=SyncRun.Mode.FULL if fetch_all else SyncRun.Mode.INCREMENTAL,
            dry_run=dry_run,
        )
    except DatabaseError as exc:
        raise SyncError(f"database error: {_first_line(exc)}; nothing was written") from exc
    if fetch_all and not delete_missing:
        logger.info(
            "Reading %s whole; trees it lacks are kept (--full deletes them)", source.description
        )
    outcome = Outcome()
    try:
        with advisory_lock(sync_run):
            _mark_abandoned_runs(exclude=sync_run)
            complete = _sync(
                source=source,
                watermark=watermark,
                delete_missing=delete_missing,
                allow_mass_delete=allow_mass_delete,
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
        message = _finish(sync_run, outcome, error=f"Socrata: {exc}")
        raise SyncError(message) from exc
    except SyncError as exc:
        message = _finish(sync_run, outcome, error=str(exc))
        if message == str(exc):
            raise
        raise SyncError(message) from exc
    except KeyboardInterrupt as exc:
        reason = str(exc) or "interrupted (Ctrl-C)"
        _finish(sync_run, outcome, error=f"{reason}; nothing was written")
        raise
    except DatabaseError as exc:
        # What went wrong first (a lost connection, say), not a failed reconnect after it.
        first, link = exc, exc
        while (link := link.__cause__ or link.__context__) is not None:
            if isinstance(link, DatabaseError):
                first = link
        error = f"database error: {_first_line(first)}; nothing was written"
        raise SyncError(_finish(sync_run, outcome, error=error)) from exc
    except Exception as exc:
        # A bug, not a condition we expect: record it, then let it surface with its traceback.
        _finish(sync_run, outcome, error=f"unexpected error: {exc!r}; nothing was written")
        raise
    if complete:
        newest = [w for w in (watermark, outcome.newest) if w is not None]
        sync_run.watermark = max(newest) if newest else None
    unrecorded = _finish(sync_run, outcome)
    if unrecorded is not None:
        raise SyncError(f"the trees were written, but {unrecorded}")
    return sync_run


def _first_line(exc: BaseException) -> str:
    """psycopg's messages run over several lines ("server closed the connection
    unexpectedly\n\tThis probably means..."); the first says what happened."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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
    watermark: datetime | None,
    delete_missing: bool,
    allow_mass_delete: bool,
    page_size: int,
    limit: int | None,
    dry_run: bool,
    outcome: Outcome,
    progress: Callable[[Progress], None] | None,
) -> bool:
    """Fetch and load; returns whether the run saw everything the source had.

    The watermark a run leaves is the largest `:updated_at` it stored, so the next
    incremental run asks for what is newer. An incremental run pages by (`:updated_at`,
    `:id`): a row updated while it pages moves past the cursor and is seen again, newer,
    so that rule holds. A full run pages by `:id`, and there it does not: a row updated
    behind the cursor keeps its old version here while rows ahead of the cursor bring
    newer stamps into the watermark, and the next run would never ask for it. So a full
    run first reads the source's newest `:updated_at` (the horizon) and ends with an
    incremental pass over everything newer than that, in the same run and transaction:
    a full run ends exact, and its watermark is true. (Capping the watermark at the
    horizon would also be safe, but leaves the table behind until the next run, and
    makes that run fetch the rows again.)
    """
    live = source if isinstance(source, LiveSource) else None
    where = None if watermark is None else _since(watermark)
    horizon = None  # the newest :updated_at when the run began (see _check_nothing_skipped)
    ask_horizon = live is not None and source.supports_incremental and limit is None
    if ask_horizon and watermark is None:
        horizon = live.newest_updated_at()
    total = source.count(where=where)
    if total is not None and limit is not None:
        total = min(total, limit)
    if progress is not None:
        progress(Progress(rows=0, total=total))
    if where is not None and total == 0:
        logger.info("Nothing changed upstream since %s", watermark.isoformat())
        return True
    if ask_horizon and watermark is not None:
        horizon = live.newest_updated_at()

    order = ":id" if where is None else ":updated_at,:id"
    pages = source.pages(
        where=where, order=order, page_size=page_size, max_rows=limit, expected_total=total
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # US-style dates in the portal's bulk CSV read as month/day/year.
            cursor.execute("SET LOCAL datestyle = 'ISO, MDY'")
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        stored_before = Tree.objects.count() if delete_missing else None
        empty = stored_before == 0 if delete_missing else table_is_empty()
        first_load = FirstLoad() if empty else None
        if first_load is not None:
            first_load.start()
            if first_load.warning:
                outcome.warn(first_load.warning)
        # Nothing can be missing from an empty table, so a first load tracks no keys.
        loader = Loader(
            track_seen=delete_missing and first_load is None,
            into_empty_table=first_load is not None,
            sample_size=REJECTION_SAMPLE_SIZE,
            table=TREE_TABLE if first_load is None else first_load.table,
        )
        loader.start()
        batch = _Batch(loader, outcome)
        clock = _Clock()
        for page in clock.waiting(prefetch(pages)):
            batch.stage(page)
            if progress is not None:
                progress(Progress(rows=batch.lines, total=total))
        fetched = batch.lines
        # Keyset pages end only at the source's end (see SocrataClient.iter_pages), so a
        # run without a limit saw everything; the count may differ if rows went meanwhile.
        complete = limit is None
        check = horizon is not None and complete
        # Stored trees a full run's pages missed are asked for again before deleting; a
        # tree that comes back then was not skipped, so the check counts it there.
        check_after_recheck = check and delete_missing and first_load is None
        if check and not check_after_recheck:
            _check_nothing_skipped(source, where, horizon, fetched=fetched)
        if check and watermark is None:
            _catch_up(source, horizon, page_size=page_size, batch=batch)
        batch.flush()
        clock.loaded()
        if delete_missing and complete:
            if first_load is None:
                outcome.deleted, rechecked = _delete_missing(
                    live,
                    batch,
                    stored=stored_before,
                    allow_mass_delete=allow_mass_delete,
                    page_size=page_size,
                )
                outcome.changed = outcome.changed or outcome.deleted > 0
                if check_after_recheck:
                    _check_nothing_skipped(source, where, horizon, fetched=fetched + rechecked)
        elif delete_missing:
            seen = f"{fetched} of {total}" if total is not None else fetched
            outcome.warn(
                f"Fetched {seen} rows (stopped early): missing trees are not deleted "
                "after an incomplete fetch"
            )
        if outcome.superseded:
            logger.info(
                "%d rows were fetched again after changing upstream during the run; "
                "their newest versions were kept",
                outcome.superseded,
            )
        if first_load is not None:
            first_load.finish()
        clock.finished(rows=outcome.fetched)
        if outcome.changed and not dry_run:
            cache.bump_data_version()
        if dry_run:
            transaction.set_rollback(True)
    return complete


def _since(moment: datetime | str) -> str:
    """`:updated_at > moment`, in Socrata's literal: UTC without the zone."""
    if isinstance(moment, datetime):
        stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    else:
        stamp = moment.removesuffix("Z")
    return f":updated_at > {soql_quote(stamp)}"


class _Batch:
    """Stages pages from one or more passes of a run and flushes them in batches.

    Rows are numbered across the whole run (each pass's pages count from 0), so "the later
    row wins" holds between passes too.
    """

    def __init__(self, loader: Loader, outcome: Outcome) -> None:
        self.loader = loader
        self.outcome = outcome
        self.lines = 0
        self._columns: dict[tuple[str, ...], ColumnMap] = {}
        self._pass_start = 0

    def next_pass(self) -> None:
        self._pass_start = self.lines

    def stage(self, page: Page) -> None:
        if page.row_count == 0:
            return  # an empty page may carry no field list to check
        columns = self._columns.get(page.fields)
        if columns is None:
            columns = self._columns[page.fields] = _check_columns(page.fields, self.outcome)
        self.loader.stage(replace(page, offset=self._pass_start + page.offset), columns)
        self.lines = self._pass_start + page.offset + page.row_count
        if self.loader.staged_rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.loader.staged_rows:
            self.outcome.add(self.loader.flush())


def _check_nothing_skipped(
    source: PageSource, where: str | None, horizon: str, *, fetched: int
) -> None:
    """Fail if the pass served fewer rows than stood still under it all along.

    A row the query matched when the run began and that is still there with an
    `:updated_at` no newer than the horizon (the newest when the run began) was never
    touched, so keyset paging must have served it. Fewer rows than that means the server
    broke the keyset (for example it ignores `$order`, so a page's last key jumps past rows
    it never served). Socrata's `:id` order is its own, so this is checked by count, not
    by comparing keys here.
    """
    stamp = soql_quote(horizon.removesuffix("Z"))
    still = source.count(where=" AND ".join(filter(None, [where, f":updated_at <= {stamp}"])))
    if still is not None and fetched < still:
        raise SocrataBadResponse(
            f"the pages served {fetched} rows, but {still} rows unchanged since the run began "
            "match the query: the server skipped rows (does it honour $order?); "
            "nothing was written"
        )


def _catch_up(source: PageSource, horizon: str, *, page_size: int, batch: _Batch) -> None:
    """The rows changed upstream since a full run began (see `_sync`)."""
    where = _since(horizon)
    total = source.count(where=where)
    if total == 0:
        return
    logger.info("%s rows changed upstream during the run; fetching them again", total)
    batch.next_pass()
    pages = source.pages(
        where=where,
        order=":updated_at,:id",
        page_size=page_size,
        max_rows=None,
        expected_total=total,
    )
    for page in pages:
        batch.stage(page)


def _delete_missing(
    live: LiveSource | None,
    batch: _Batch,
    *,
    stored: int,
    allow_mass_delete: bool,
    page_size: int,
) -> tuple[int, int]:
    """Delete the stored trees the source no longer has; returns how many went, and how
    many rows came back when the trees were asked for again.

    A tree the fetch did not see is asked for once more by tree_id before it goes (a
    source that cannot be asked, a file, is its own truth): those that come back are
    loaded as they are now, not deleted. More than SYNC_MAX_DELETE_FRACTION of the table
    is refused, unless allowed, before anything is written.
    """
    unseen = batch.loader.unseen_tree_ids()
    if not unseen:
        return 0, 0
    fraction = settings.SYNC_MAX_DELETE_FRACTION
    if len(unseen) > fraction * stored and not allow_mass_delete:
        raise MassDeleteRefused(would_delete=len(unseen), stored=stored, fraction=fraction)
    rechecked = 0
    if live is not None:
        batch.next_pass()
        start = batch.lines
        for page in live.recheck(unseen, page_size=page_size):
            batch.stage(page)
        batch.flush()
        rechecked = batch.lines - start
    deleted = batch.loader.delete_missing()
    if deleted > fraction * stored:
        batch.outcome.warn(
            f"Deleted {deleted} of {stored} trees, more than {fraction:.0%} of the table "
            "(allowed for this run)"
        )
    return deleted, rechecked


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
    """Hold the session-level sync lock, or raise SyncAlreadyRunning at once.

    The holder records its backend pid on its SyncRun, so a refused run names the run that
    really holds the lock (found through pg_locks), not merely the newest one marked
    running: that may be another refused run, or one whose process died.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", [ADVISORY_LOCK_ID])
        locked, pid = cursor.fetchone()
    if not locked:
        raise SyncAlreadyRunning(f"Another sync is running{_lock_holder()}; try again later")
    SyncRun.objects.filter(pk=sync_run.pk).update(backend_pid=pid)
    sync_run.backend_pid = pid
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        except (InterfaceError, OperationalError):
            connection.close()  # the connection is gone, and the lock with it


def _lock_holder() -> str:
    """What a refusal says of the lock holder: its run, else its backend pid, else nothing."""
    # A bigint advisory key shows in pg_locks as classid (high half), objid (low half).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s AND objsubid = 1",
            [ADVISORY_LOCK_ID >> 32, ADVISORY_LOCK_ID & 0xFFFFFFFF],
        )
        row = cursor.fetchone()
    if row is None:
        return ""  # released in the meantime
    (pid,) = row
    holder = (
        SyncRun.objects.filter(status=SyncRun.Status.RUNNING, backend_pid=pid)
        .order_by("-started_at", "-id")
        .first()
    )
    if holder is None:
        return f" (Postgres backend {pid} holds the lock)"
    return f" (run {holder.pk}, started {holder.started_at:%Y-%m-%d %H:%M:%S %Z})"


def _mark_abandoned_runs(*, exclude: SyncRun) -> None:
    """Runs left 'running' by a process that died: we hold the lock, so none is alive."""
    SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exclude(pk=exclude.pk).update(
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        error_message="abandoned: the process ended before the run finished",
    )


def _finish(sync_run: SyncRun, outcome: Outcome, *, error: str | None = None) -> str | None:
    """Record how the run ended; returns `error`, saying so if it could not be recorded.

    The database may be what failed: then this tries once more on a fresh connection, and
    if that fails too, the run stays 'running' until the next sync marks it abandoned.
    Returns None only when a successful run was recorded.
    """
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
        try:
            sync_run.save()
        except (InterfaceError, OperationalError):
            # An interrupt can leave the connection unusable; a fresh one records the outcome.
            connection.close()
            sync_run.save()
    except DatabaseError as exc:
        logger.debug("Could not record run %s: %s", sync_run.pk, _first_line(exc))
        unrecorded = (
            f"run {sync_run.pk} could not be recorded as {sync_run.status} "
            f"({_first_line(exc)}); the next sync marks it abandoned"
        )
        return unrecorded if error is None else f"{error}; {unrecorded}"
    return error


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

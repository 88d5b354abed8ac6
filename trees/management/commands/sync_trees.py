"""`manage.py sync_trees`: parse options, run trees.sync, report. The work is in trees/sync.py."""

import logging
import signal
import sys
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from trees import sync
from trees.exceptions import MassDeleteRefused, SyncAlreadyRunning, SyncError
from trees.files import FileSource
from trees.socrata import SocrataClient

EXIT_FAILED = 1
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: try again later
EXIT_INTERRUPTED = 130  # as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # as a shell reports SIGTERM


class Command(BaseCommand):
    # The full system checks (URLs, admin, templates) cost a few hundred milliseconds and
    # check nothing the sync uses; the default run must stay well under a second.
    requires_system_checks = []
    help = (
        "Bring the street tree census from Socrata (or a file) into the database. "
        "Incremental once a complete run exists; --full fetches everything and deletes "
        "trees the source no longer has. A file is read whole, and only --full deletes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="fetch every row, then delete missing trees"
        )
        parser.add_argument(
            "--allow-mass-delete",
            action="store_true",
            help="let a full run delete more than SYNC_MAX_DELETE_FRACTION of the trees",
        )
        parser.add_argument(
            "--dataset",
            default=settings.SOCRATA_DATASET,
            help="Socrata dataset id (default: %(default)s, from SOCRATA_DATASET)",
        )
        parser.add_argument(
            "--page-size",
            type=int,
            default=sync.DEFAULT_PAGE_SIZE,
            help="rows per request, at most 50000 (default: %(default)s)",
        )
        parser.add_argument("--limit", type=int, help="stop after this many rows (a first try)")
        parser.add_argument(
            "--dry-run", action="store_true", help="fetch and validate, but write nothing"
        )
        parser.add_argument(
            "--from-file",
            metavar="PATH",
            help="read the API's JSON or CSV, or the portal's bulk CSV export, from disk "
            "(inserts and updates; with --full, also deletes the trees the file lacks)",
        )
        parser.add_argument(
            "--format",
            choices=["csv", "json"],
            default="csv",
            help="what to ask Socrata for (default: %(default)s, the faster one)",
        )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        # Django's verbosity sets how chatty the sync's own log is: 0 warnings only, 2+ debug.
        level = {0: logging.WARNING, 1: logging.INFO}.get(options["verbosity"], logging.DEBUG)
        logging.getLogger("trees").setLevel(level)
        source = self._source(options)
        bar = _ProgressBar(enabled=options["verbosity"] >= 1 and sys.stderr.isatty())
        try:
            with raise_on_sigterm(), bar:
                sync_run = sync.run(
                    source=source,
                    dataset=options["dataset"],
                    full=options["full"],
                    allow_mass_delete=options["allow_mass_delete"],
                    page_size=options["page_size"],
                    limit=options["limit"],
                    dry_run=options["dry_run"],
                    progress=bar.update,
                )
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc), returncode=EXIT_ALREADY_RUNNING) from exc
        except MassDeleteRefused as exc:
            raise CommandError(
                f"Sync failed: {exc}. If the source really lost them, run again with "
                "--allow-mass-delete.",
                returncode=EXIT_FAILED,
            ) from exc
        except SyncError as exc:
            raise CommandError(f"Sync failed: {exc}", returncode=EXIT_FAILED) from exc
        except KeyboardInterrupt as exc:
            reason = str(exc) or "interrupted (Ctrl-C)"
            code = EXIT_TERMINATED if isinstance(exc, sync.SyncInterrupted) else EXIT_INTERRUPTED
            raise CommandError(f"Sync {reason}; nothing was written", returncode=code) from exc
        self.stdout.write(_summary(sync_run, time.monotonic() - started))

    def _source(self, options) -> sync.PageSource:
        if options["from_file"]:
            try:
                return FileSource(options["from_file"])
            except SyncError as exc:
                raise CommandError(str(exc), returncode=EXIT_FAILED) from exc
        client = SocrataClient(
            settings.SOCRATA_URL,
            app_token=settings.SOCRATA_APP_TOKEN,
            format=options["format"],
            connect_timeout=settings.SOCRATA_CONNECT_TIMEOUT,
            read_timeout=settings.SOCRATA_READ_TIMEOUT,
            max_attempts=settings.SOCRATA_MAX_ATTEMPTS,
        )
        return sync.SocrataSource(client=client, dataset=options["dataset"])


def _summary(sync_run, seconds: float) -> str:
    counts = (
        f"fetched {sync_run.rows_fetched}, inserted {sync_run.rows_inserted}, "
        f"updated {sync_run.rows_updated}, unchanged {sync_run.rows_unchanged}, "
        f"deleted {sync_run.rows_deleted}, rejected {sync_run.rows_rejected}"
    )
    what = "Dry run (nothing written)" if sync_run.dry_run else "Sync"
    lines = [f"{what} {sync_run.pk} ({sync_run.mode}) done in {seconds:.1f} s: {counts}"]
    lines += [f"  rejected row {r['row']}: {r['reason']}" for r in sync_run.rejection_samples[:5]]
    if len(sync_run.warnings):
        lines.append(f"  {len(sync_run.warnings)} warning(s); see the run in the admin")
    return "\n".join(lines)


class _ProgressBar:
    """Rows done of the total, rate and time left, on a terminal only (tqdm)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, progress: sync.Progress) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=progress.total, unit="rows", unit_scale=True, file=sys.stderr)
        self.bar.update(progress.rows - self.bar.n)


@contextmanager
def raise_on_sigterm():
    """Turn SIGTERM into an exception, so a stopped sync rolls back and records why."""

    def handler(signum, frame):
        raise sync.SyncInterrupted("interrupted by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

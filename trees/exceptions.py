"""Domain errors. The command and the API map them to exit codes and HTTP statuses."""


class TreesError(Exception):
    """Base class for errors this project raises on purpose."""


class SyncError(TreesError):
    """A sync could not complete; the message says why, without any secret."""


class SyncAlreadyRunning(SyncError):
    """Another sync holds the lock: only one may run at a time."""


class DataNotLoaded(TreesError):
    """No sync has loaded any census data yet."""


class MassDeleteRefused(SyncError):
    """A full run would delete more of the table than the configured share: nothing written.

    Usually the source is broken or half-published, not emptied on purpose; the operator
    decides (the command's option to allow a mass delete).
    """

    def __init__(self, *, would_delete: int, stored: int, fraction: float) -> None:
        share = would_delete / stored if stored else 1.0
        super().__init__(
            f"The source no longer has {would_delete} of the {stored} stored trees "
            f"({share:.1%}), more than the {fraction:.0%} a run may delete "
            "(SYNC_MAX_DELETE_FRACTION); nothing was written"
        )
        self.would_delete = would_delete
        self.stored = stored
        self.fraction = fraction

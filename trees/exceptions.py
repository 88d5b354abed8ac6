"""Domain errors. The command and the API map them to exit codes and HTTP statuses."""


class TreesError(Exception):
    """Base class for errors this project raises on purpose."""


class SyncError(TreesError):
    """A sync could not complete; the message says why, without any secret."""


class SyncAlreadyRunning(SyncError):
    """Another sync holds the lock: only one may run at a time."""


class DataNotLoaded(TreesError):
    """No sync has loaded any census data yet."""

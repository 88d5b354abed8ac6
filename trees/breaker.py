"""A circuit breaker: after a failure, stop calling a dependency for a while.

Redis is the API's cache and throttle, never its source of truth, so when it does not
answer the API does without it. Waiting for it on every request would instead add its
timeout to each one (a paused Redis answers nothing, so each call waits the whole socket
timeout), and logging each failure would write a traceback per request. So the first
failure opens the breaker: calls are skipped for `open_seconds`, then one is tried again;
each failed try logs one warning (one per interval, whatever the traffic), and the first
success after an outage logs that the dependency is back.

The state is per process (each gunicorn worker finds out for itself, at the cost of one
timeout each). Races between threads are harmless: at worst two threads try at once.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        errors: tuple[type[BaseException], ...],
        open_seconds: Callable[[], float],
        consequence: str,
    ) -> None:
        self.name = name
        self.errors = errors
        self.open_seconds = open_seconds  # read at each failure, so settings can change it
        self.consequence = consequence  # what the caller does without it, for the log
        self.open_until = 0.0  # time.monotonic() before which calls are skipped
        self.down_since: float | None = None  # when the current outage began
        self.failures = 0  # calls that failed since the process started

    def is_open(self) -> bool:
        return self.open_until > 0.0 and time.monotonic() < self.open_until

    def call(self, function: Callable[[], T], *, fallback: T) -> T:
        """`function()`, or `fallback` if the breaker is open or the call fails."""
        if self.open_until > 0.0 and time.monotonic() < self.open_until:
            return fallback
        try:
            result = function()
        except self.errors as exc:
            self.record_failure(exc)
            return fallback
        if self.down_since is not None:
            self.record_success()
        return result

    def record_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        seconds = self.open_seconds()
        self.failures += 1
        self.open_until = now + seconds
        if self.down_since is None:
            self.down_since = now
            logger.warning(
                "%s is unavailable (%s: %s); %s. Trying again every %g s.",
                self.name,
                type(exc).__name__,
                exc,
                self.consequence,
                seconds,
            )
        else:
            logger.warning(
                "%s still unavailable after %.0f s (%s: %s).",
                self.name,
                now - self.down_since,
                type(exc).__name__,
                exc,
            )

    def record_success(self) -> None:
        if self.down_since is not None:
            logger.info(
                "%s answers again, after %.0f s.", self.name, time.monotonic() - self.down_since
            )
        self.down_since = None
        self.open_until = 0.0

    def reset(self) -> None:
        """Forget any outage (for tests, whose Redis changes between them)."""
        self.open_until = 0.0
        self.down_since = None
        self.failures = 0


# Every Redis call the API makes goes through this one (django-redis raises
# ConnectionInterrupted, from the RedisError, when its backend does not ignore errors).
redis = CircuitBreaker(
    "Redis",
    errors=(RedisError, ConnectionInterrupted),
    open_seconds=lambda: settings.REDIS_BREAKER_SECONDS,
    consequence="the API answers without throttling or its response cache meanwhile",
)

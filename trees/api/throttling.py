"""Requests per client address, counted in Redis in fixed windows.

DRF's own throttles keep a list of timestamps per client in the cache: a read, a trim and a
write of the whole list on every request, and a race between workers. A fixed window is one
Redis round trip (INCR and EXPIRE, pipelined) and exact across workers; its cost is that a
client may send up to twice the rate across a window boundary, which is fine for shedding
abuse. If Redis is unreachable the request is let through (logged): throttling must never
turn an outage of the cache into an outage of the API. ResponseCacheMiddleware applies it
to every request under /api/, before DRF: DRF's own throttles are off.
"""

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.client import Pipeline
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Rate(NamedTuple):
    requests: int
    seconds: int


@functools.cache
def parse_rate(text: str) -> Rate:
    """`"120/minute"` -> Rate(120, 60); the period is read by its first letter, as DRF does."""
    try:
        number, period = text.split("/")
        rate = Rate(int(number), PERIODS[period.strip()[0].lower()])
    except (ValueError, KeyError, IndexError):
        raise ImproperlyConfigured(
            f"API_THROTTLE_RATE={text!r}: expected <number>/<second|minute|hour|day>"
        ) from None
    if rate.requests < 1:
        raise ImproperlyConfigured(f"API_THROTTLE_RATE={text!r}: the number must be positive")
    return rate


def client_address(request: HttpRequest) -> str:
    """The connecting address, or X-Forwarded-For's as far as API_TRUSTED_PROXIES allow.

    Each trusted proxy appends the address it received the request from, so with N proxies
    the client is the Nth address from the end; anything before it could be forged.
    """
    proxies = settings.API_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "")


@dataclass(frozen=True)
class Window:
    """One client's current counting window; its commands can join a caller's pipeline."""

    key: str
    rate: Rate
    ends_at: float

    @classmethod
    def of(cls, request: HttpRequest, backend: BaseCache = cache) -> "Window":
        rate = parse_rate(settings.API_THROTTLE_RATE)
        number = int(time.time() // rate.seconds)
        key = backend.make_key(f"throttle:{client_address(request)}:{number}")
        return cls(key, rate, (number + 1) * rate.seconds)

    def count(self, pipeline: Pipeline) -> None:
        """Queue this request's count; its result is the first of the two replies."""
        pipeline.incr(self.key)
        pipeline.expire(self.key, self.rate.seconds)

    def seconds_to_wait(self, count: int) -> int | None:
        if count <= self.rate.requests:
            return None
        return max(1, math.ceil(self.ends_at - time.time()))


def seconds_to_wait(request: HttpRequest) -> int | None:
    """Count this request against its client; None if it may go ahead, else seconds to wait."""
    window = Window.of(request)
    try:
        pipeline = get_redis_connection("default").pipeline(transaction=False)
        window.count(pipeline)
        count, _ = pipeline.execute()
    except RedisError as exc:
        log_redis_unavailable(exc)
        return None
    return window.seconds_to_wait(count)


def log_redis_unavailable(exc: RedisError) -> None:
    logger.warning("Throttling skipped, Redis is unavailable: %s", exc)

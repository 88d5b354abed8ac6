"""Requests per client address, counted in Redis in fixed windows.

DRF's own throttles keep a list of timestamps per client in the cache: a read, a trim and a
write of the whole list on every request, and a race between workers. A fixed window is one
atomic Redis command (a short Lua script: INCR, and EXPIRE on a window's first request) and
exact across workers; its cost is that a client may send up to twice the rate across a
window boundary, which is fine for shedding abuse. The same command can read other keys, so
the response cache folds its reads into the round trip the count costs anyway.

ResponseCacheMiddleware applies this to every request under /api/, before DRF (whose own
throttles are off). A view picks its allowance with DRF's `throttle_scope` attribute: `export`
counts against API_EXPORT_THROTTLE_RATE, in a counter of its own, and everything else against
API_THROTTLE_RATE. Each answer reports where the client stands (`Quota`: the count comes back
from the same command), which the middleware sends as the RateLimit-* headers.

If Redis is unreachable the request is let through (and its answer carries no RateLimit-*
headers): throttling must never turn an outage of the cache into an outage of the API. The
call goes through the Redis circuit breaker (trees/breaker.py), so an outage costs one short
timeout per interval and one warning in the log, not a wait and a traceback per request.
"""

import functools
import math
import time
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.commands.core import Script

from trees import breaker

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Rate(NamedTuple):
    requests: int
    seconds: int


class Quota(NamedTuple):
    """Where a client stands after a request: what the RateLimit-* headers say."""

    limit: int  # requests allowed per window
    remaining: int  # left in this window (0 once over)
    reset: int  # seconds until the window ends
    wait: int | None  # seconds to wait before the next request, if over the limit


# Scope (a view's `throttle_scope`) -> the setting holding its rate; any other scope, or none,
# is the general one.
SCOPE_SETTINGS = {"export": "API_EXPORT_THROTTLE_RATE", "tiles": "API_TILE_THROTTLE_RATE"}
DEFAULT_SCOPE = "default"
DEFAULT_SETTING = "API_THROTTLE_RATE"


@functools.cache
def parse_rate(text: str, setting: str = DEFAULT_SETTING) -> Rate:
    """`"120/minute"` -> Rate(120, 60); the period is read by its first letter, as DRF does."""
    try:
        number, period = text.split("/")
        rate = Rate(int(number), PERIODS[period.strip()[0].lower()])
    except (ValueError, KeyError, IndexError):
        raise ImproperlyConfigured(
            f"{setting}={text!r}: expected <number>/<second|minute|hour|day>"
        ) from None
    if rate.requests < 1:
        raise ImproperlyConfigured(f"{setting}={text!r}: the number must be positive")
    return rate


def scope_of(view_class: type | None) -> str:
    """The throttle scope a view declares (DRF's `throttle_scope`), if it has a rate of its own."""
    scope = getattr(view_class, "throttle_scope", None)
    return scope if scope in SCOPE_SETTINGS else DEFAULT_SCOPE


def rate_of(scope: str) -> Rate:
    setting = SCOPE_SETTINGS.get(scope, DEFAULT_SETTING)
    return parse_rate(getattr(settings, setting), setting)


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


# A fixed-window counter in one atomic command: INCR, and EXPIRE on the window's first
# request only. The keys after the first are read with MGET in the same command, so a caller
# can fold its own reads into the round trip the count costs anyway.
COUNT_AND_READ = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS == 1 then return {count, {}} end
return {count, redis.call('MGET', unpack(KEYS, 2))}
"""


@functools.cache
def _count_and_read_script() -> Script:
    # Registered once; each call runs it on the current client (EVALSHA, loading on NOSCRIPT).
    return get_redis_connection("default").register_script(COUNT_AND_READ)


def count_and_read(
    request: HttpRequest,
    *keys: str,
    backend: BaseCache = cache,
    scope: str = DEFAULT_SCOPE,
) -> tuple[Quota, list[bytes | None]]:
    """Count this request against its client's allowance in `scope`; read `keys` (full cache
    keys) meanwhile.

    Returns the client's quota (`wait` set if it must wait) and the raw values.
    Raises RedisError if Redis cannot be reached.
    """
    rate = rate_of(scope)
    now = time.time()
    window = int(now // rate.seconds)
    # The general scope keeps its key of old: counters survive a deploy mid-window.
    scoped = "" if scope == DEFAULT_SCOPE else f"{scope}:"
    counter = backend.make_key(f"throttle:{scoped}{client_address(request)}:{window}")
    count, values = _count_and_read_script()(
        keys=[counter, *keys], args=[rate.seconds], client=get_redis_connection("default")
    )
    reset = max(1, math.ceil((window + 1) * rate.seconds - now))
    quota = Quota(
        limit=rate.requests,
        remaining=max(0, rate.requests - count),
        reset=reset,
        wait=reset if count > rate.requests else None,
    )
    return quota, values


def count(request: HttpRequest, scope: str = DEFAULT_SCOPE) -> Quota | None:
    """Count this request against its client; its quota, or None while Redis is unavailable
    (nobody waits then, and the breaker logs it)."""
    return breaker.redis.call(lambda: count_and_read(request, scope=scope)[0], fallback=None)

"""Requests per client address, counted in Redis in fixed windows.

DRF's own throttles keep a list of timestamps per client in the cache: a read, a trim and a
write of the whole list on every request, and a race between workers. A fixed window is one
atomic Redis command (a short Lua script: INCR, and EXPIRE on a window's first request) and
exact across workers; its cost is that a client may send up to twice the rate across a
window boundary, which is fine for shedding abuse. The same command can read other keys, so
the response cache folds its reads into the round trip the count costs anyway.

ResponseCacheMiddleware applies this to every request under /api/, before DRF (whose own
throttles are off). If Redis is unreachable the request is let through: throttling must
never turn an outage of the cache into an outage of the API. The call goes through the
Redis circuit breaker (trees/breaker.py), so an outage costs one short timeout per interval
and one warning in the log, not a wait and a traceback per request.
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
    request: HttpRequest, *keys: str, backend: BaseCache = cache
) -> tuple[int | None, list[bytes | None]]:
    """Count this request against its client; read `keys` (full cache keys) meanwhile.

    Returns the seconds the client must wait (None if it may go ahead) and the raw values.
    Raises RedisError if Redis cannot be reached.
    """
    rate = parse_rate(settings.API_THROTTLE_RATE)
    now = time.time()
    window = int(now // rate.seconds)
    counter = backend.make_key(f"throttle:{client_address(request)}:{window}")
    count, values = _count_and_read_script()(
        keys=[counter, *keys], args=[rate.seconds], client=get_redis_connection("default")
    )
    wait = None
    if count > rate.requests:
        wait = max(1, math.ceil((window + 1) * rate.seconds - now))
    return wait, values


def seconds_to_wait(request: HttpRequest) -> int | None:
    """Count this request against its client; None if it may go ahead, else seconds to wait.

    None too while Redis is unavailable (the breaker logs it).
    """
    return breaker.redis.call(lambda: count_and_read(request)[0], fallback=None)

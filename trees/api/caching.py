"""The response cache: GET and HEAD answered from Redis, under keys that carry the data version.

`cached_view` wraps a view and runs before DRF does:

1. One Redis round trip counts the request against its client's throttle, reads the data
   version, and reads the cached body under the version this process saw last. That guess
   is used only if the version read in the same round trip confirms it; after a sync it is
   wrong once, and a second read follows. (Three round trips cost a cached page about a
   third of its throughput in benchmarks/bench_api.py.)
2. The response's key and ETag come from the version and the normalised request
   (trees.cache.response_key); a matching If-None-Match or If-Modified-Since is a 304 at
   once: the version alone says whether anything changed.
3. A cached body is sent as stored, without running DRF at all: the hot path.
4. Otherwise the view runs, and a 200 is stored for the next request. Errors are not stored.

Nothing stale can be served: a sync bumps the version in the transaction that changes the
data, so the first request after it reads the new version and computes a new key. If Redis
is down, the request is not throttled, the version comes from Postgres, and the view runs.
"""

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from trees import cache as data_cache
from trees.api import errors, throttling
from trees.api.negotiation import FormatNegotiation, requested_format

# The data version this process saw last: the guess behind the speculative body read.
_last_version: int | None = None


@dataclass(frozen=True)
class Lookup:
    wait: int | None  # seconds the client must wait, or None
    version: data_cache.Version
    cached: tuple[str, bytes] | None  # (content type, body) stored for this request


def lookup(request: HttpRequest, key_for: Callable[[int], str]) -> Lookup:
    """Throttle, data version and cached response, in one round trip when the guess holds."""
    global _last_version
    guess = _last_version
    window = throttling.Window.of(request)
    try:
        pipeline = get_redis_connection("default").pipeline(transaction=False)
        window.count(pipeline)
        pipeline.get(cache.make_key(data_cache.DATA_VERSION_KEY))
        if guess is not None:
            pipeline.get(cache.make_key(key_for(guess)))
        count, _, raw_version, *guessed = pipeline.execute()
    except RedisError as exc:
        throttling.log_redis_unavailable(exc)
        return Lookup(None, data_cache.data_version(), None)

    version = _decode_version(raw_version)
    if version.number == guess:
        cached = cache.client.decode(guessed[0]) if guessed[0] is not None else None
    else:
        cached = cache.get(key_for(version.number))
        _last_version = version.number
    return Lookup(window.seconds_to_wait(count), version, cached)


def _decode_version(raw: bytes | None) -> data_cache.Version:
    if raw is not None:
        try:
            return data_cache.Version.parse(cache.client.decode(raw))
        except ValueError:
            pass  # data_version() below logs it and repairs the cached copy
    return data_cache.data_version()


def _response_key(request: HttpRequest, version: int) -> str:
    return data_cache.response_key(
        version=version,
        url=request.build_absolute_uri(request.path),
        path=request.path,
        query=[(name, value) for name, values in request.GET.lists() for value in values],
        fmt=requested_format(request),
    )


def cached_view(view):
    @functools.wraps(view)  # keeps .cls, .actions and .initkwargs for routers and the schema
    def serve(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            wait = throttling.seconds_to_wait(request)
            if wait is not None:
                return errors.throttled_response(wait)
            return view(request, *args, **kwargs)  # DRF answers 405

        key_for = functools.cache(functools.partial(_response_key, request))
        found = lookup(request, key_for)
        if found.wait is not None:
            return errors.throttled_response(found.wait)
        key = key_for(found.version.number)
        etag = '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'
        last_modified = int(found.version.changed_at.timestamp())
        conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if conditional is not None:  # 304 Not Modified (or 412 for a failed If-Match)
            return _with_validators(conditional, etag, last_modified)

        if found.cached is not None:
            content_type, body = found.cached
            response = HttpResponse(body, content_type=content_type)
            response["X-Cache"] = "HIT"
        else:
            response = view(request, *args, **kwargs)
            if response.status_code != 200:
                return response
            response.render()
            cache.set(key, (response["Content-Type"], response.content))
            response["X-Cache"] = "MISS"
        return _with_validators(response, etag, last_modified)

    return serve


def _with_validators(response: HttpResponse, etag: str, last_modified: int) -> HttpResponse:
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified)
    # Caches may keep the response but must ask again before each reuse (max-age 0 by
    # default): a revalidation costs us one Redis read and a 304, and a client never sees
    # data older than the last sync. API_CACHE_MAX_AGE trades that for fewer requests.
    response["Cache-Control"] = f"public, max-age={settings.API_CACHE_MAX_AGE}, must-revalidate"
    patch_vary_headers(response, ["Accept"])
    return response


class CachedResponseMixin:
    """For API viewsets: answer from the response cache before DRF runs (see cached_view)."""

    # cached_view has already throttled the request, hit or miss: DRF must not count it twice.
    throttle_classes = ()
    # The cache keys a response by requested_format(): DRF must pick renderers by that rule.
    content_negotiation_class = FormatNegotiation

    @classmethod
    def as_view(cls, *args, **initkwargs):
        return cached_view(super().as_view(*args, **initkwargs))

"""The API's front door: throttling, and responses answered from Redis by data version.

ResponseCacheMiddleware sits just after SecurityMiddleware, so a cached response skips the
rest of the stack (sessions, CSRF, authentication, messages: none of which an anonymous
read-only API uses) as well as DRF. For every request under /api/ it:

1. counts the request against its client's throttle; for a GET or HEAD of a cached view
   (one with CachedResponseMixin), the same Redis command (throttling.count_and_read)
   reads the data version and the cached response under the version this process saw
   last. That guess is used only if the version read alongside confirms it; after a sync
   it is wrong once, and a second read follows. (Measured with benchmarks/bench_api.py:
   three round trips behind the full middleware stack ran a cached page at about half the
   plain view's rate; one command here, about 0.7x, as fast as a bare view doing one GET.)
2. derives the response's key and ETag from the version and the normalised request
   (trees.cache.response_key); a matching If-None-Match or If-Modified-Since is a 304 at
   once, since the version alone says whether anything changed;
3. sends a cached response as stored: the hot path;
4. otherwise runs the view, and stores its response if it is a 200. Errors are not stored.

Nothing stale can be served: a sync bumps the version in the transaction that changes the
data, so the first request after it reads the new version and computes a new key. If Redis
is down, nobody is throttled, the version comes from Postgres, and every view runs.
"""

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_urlconf, resolve
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from redis.exceptions import RedisError

from trees import cache as data_cache
from trees.api import errors, throttling
from trees.api.negotiation import FormatNegotiation, requested_format

# The data version this process saw last: the guess behind the speculative read.
_last_version: int | None = None


class RecentResponses:
    """Responses this process sent lately, under the same keys as in Redis, within a budget.

    A hit then costs one small Redis read (the count and the version) instead of copying the
    whole body out of Redis again. The keys carry the data version, so an entry can never be
    stale: after a sync it is simply never asked for again, and gives way to newer ones.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> tuple[str, bytes] | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: tuple[str, bytes]) -> None:
        if key in self.entries or len(entry[1]) > self.max_bytes // 4:
            return
        self.entries[key] = entry
        self.size += len(entry[1])
        while self.size > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.size -= len(evicted[1])

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0


recent = RecentResponses(max_bytes=8 * 1024 * 1024)


@dataclass(frozen=True)
class Lookup:
    wait: int | None  # seconds the client must wait, or None
    version: data_cache.Version
    cached: tuple[str, bytes] | None  # (content type, body) stored for this request


def lookup(request: HttpRequest, key_for: Callable[[int], str]) -> Lookup:
    """Throttle, data version and cached response, in one round trip when the guess holds."""
    global _last_version
    guess = _last_version
    backend = caches["default"]  # once: each `cache.` goes through a thread-local lookup
    remembered = recent.get(key_for(guess)) if guess is not None else None
    reads = [backend.make_key(data_cache.DATA_VERSION_KEY)]
    if guess is not None and remembered is None:
        reads.append(backend.make_key(key_for(guess)))
    try:
        wait, (raw_version, *guessed) = throttling.count_and_read(request, *reads, backend=backend)
    except RedisError as exc:
        throttling.log_redis_unavailable(exc)
        return Lookup(None, data_cache.data_version(), None)

    version = _decode_version(backend, raw_version)
    if version.number == guess:
        cached = remembered
        if cached is None and guessed[0] is not None:
            cached = backend.client.decode(guessed[0])
    else:
        _last_version = version.number
        cached = recent.get(key_for(version.number)) or backend.get(key_for(version.number))
    if cached is not None:
        recent.put(key_for(version.number), cached)
    return Lookup(wait, version, cached)


def _decode_version(backend: BaseCache, raw: bytes | None) -> data_cache.Version:
    if raw is not None:
        try:
            return data_cache.Version.parse(backend.client.decode(raw))
        except ValueError:
            pass  # data_version() below logs it and repairs the cached copy
    return data_cache.data_version()


def _response_key(request: HttpRequest, version: int) -> str:
    return data_cache.response_key(
        version=version,
        url=f"{request.scheme}://{request.get_host()}{request.path}",
        path=request.path,
        query=[(name, value) for name, values in request.GET.lists() for value in values],
        fmt=requested_format(request),
    )


@functools.lru_cache(maxsize=4096)
def _is_cached_view(path_info: str, urlconf: str) -> bool:
    """Whether the path routes to a CachedResponseMixin view (remembered: routes are fixed)."""
    try:
        view = resolve(path_info, urlconf).func
    except Resolver404:
        return False
    view_class = getattr(view, "cls", None)
    return view_class is not None and issubclass(view_class, CachedResponseMixin)


class ResponseCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(errors.API_PREFIX):
            return self.get_response(request)
        cacheable = _is_cached_view(request.path_info, get_urlconf() or settings.ROOT_URLCONF)
        if request.method not in ("GET", "HEAD") or not cacheable:
            wait = throttling.seconds_to_wait(request)
            if wait is not None:
                return errors.throttled_response(wait)
            return self.get_response(request)

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
            response = self.get_response(request)
            if response.status_code != 200:
                return response
            entry = (response["Content-Type"], response.content)
            cache.set(key, entry)
            recent.put(key, entry)
            response["X-Cache"] = "MISS"
        return _with_validators(response, etag, last_modified)


@functools.lru_cache(maxsize=16)
def _http_date(timestamp: int) -> str:
    return http_date(timestamp)  # the same few versions, request after request


def _with_validators(response: HttpResponse, etag: str, last_modified: int) -> HttpResponse:
    response["ETag"] = etag
    response["Last-Modified"] = _http_date(last_modified)
    # Caches may keep the response but must ask again before each reuse (max-age 0 by
    # default): a revalidation costs us one Redis read and a 304, and a client never sees
    # data older than the last sync. API_CACHE_MAX_AGE trades that for fewer requests.
    response["Cache-Control"] = f"public, max-age={settings.API_CACHE_MAX_AGE}, must-revalidate"
    patch_vary_headers(response, ["Accept"])
    return response


class CachedResponseMixin:
    """Marks an API viewset whose GET responses ResponseCacheMiddleware caches."""

    # The cache keys a response by requested_format(): DRF must pick renderers by that rule.
    content_negotiation_class = FormatNegotiation

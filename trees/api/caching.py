"""The API's front door: throttling, and responses answered from Redis by data version.

ResponseCacheMiddleware sits just after SecurityMiddleware, so a cached response skips the
rest of the stack (sessions, CSRF, authentication, messages: none of which an anonymous
read-only API uses) as well as DRF. For a GET or HEAD of a cached view (one with
CachedResponseMixin) it:

1. works out what the request means (trees.api.filters.normalised_query: its parameters as
   the view will validate and read them, OR values sorted and distinct). A request that
   fails validation skips the cache: the view answers its 400, never stored, and no SQL
   runs for it;
2. reads the data version from Postgres (trees.cache.data_version, one primary-key read);
3. derives the response's key and ETag from the two (trees.cache.response_key); a matching
   If-None-Match is a 304 at once, since the version alone says whether anything changed
   (a matching If-Modified-Since too once the response is known to be a 200: stored, or
   the view's answer; a date can also name a tree that does not exist, which stays a 404);
4. counts the request against its client's throttle and reads the stored response, in one
   Redis command (throttling.count_and_read), or only counts it when this process holds the
   response in memory already (RecentResponses);
5. sends a stored response as it is: the hot path. Otherwise it runs the view, and stores
   its response if it is a 200.

Why the version comes from Postgres, and before the view runs. The sync bumps it in the
transaction that changes the data, so a request reads the version of the very data it can
see; nothing has to carry the news of a commit anywhere (a copy in Redis did, and missed it
whenever Redis was paused, restarted or unreachable at the commit, then named old data
forever). Read before the view, a stored response is never older than its key: if a sync
commits while the view runs, the response may hold newer data under the older version's
key, which is harmless, since every request after the commit reads the new version and
never asks for that key again. Read after the view, the reverse could happen: old data
stored under the new version, served until the next sync.

Redis holds only response bodies and throttle counters, nothing that decides whether a
response is right: paused, flushed or down, it can only make responses slower. Each call to
it goes through a circuit breaker (trees/breaker.py) with short timeouts (REDIS_TIMEOUT):
after a failure the API skips Redis for REDIS_BREAKER_SECONDS (no throttling, no stored
responses, views run), and an outage logs one warning per interval. With Postgres down, the
version cannot be read and cached views answer a JSON 503, as the views themselves would.
"""

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_urlconf, resolve
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from django_redis import get_redis_connection

from trees import breaker
from trees import cache as data_cache
from trees.api import errors, filters, throttling
from trees.api.negotiation import FormatNegotiation, requested_format

Entry = tuple[str, bytes]  # (content type, body) of a stored response


class RecentResponses:
    """Responses this process sent lately, under the same keys as in Redis, within a budget.

    A hit then costs one small Redis command (the throttle count) instead of copying the
    whole body out of Redis again. The keys carry the data version, so an entry can never be
    stale: after a sync it is simply never asked for again, and gives way to newer ones.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
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


def _encode(entry: Entry) -> bytes:
    content_type, body = entry
    return content_type.encode() + b"\n" + body


def _decode(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    content_type, _, body = raw.partition(b"\n")
    return content_type.decode(), body


def lookup(request: HttpRequest, key: str) -> tuple[int | None, Entry | None]:
    """Throttle the request and find its stored response: one Redis command, or none.

    Returns the seconds the client must wait (or None) and the stored response (or None).
    With Redis unavailable: nobody waits, and only this process's memory can answer.
    """
    remembered = recent.get(key)
    backend = caches["default"]  # once: each `cache.` goes through a thread-local lookup

    def count_and_read() -> tuple[int | None, Entry | None]:
        if remembered is not None:
            wait, _ = throttling.count_and_read(request, backend=backend)
            return wait, remembered
        wait, (raw,) = throttling.count_and_read(request, backend.make_key(key), backend=backend)
        return wait, _decode(raw)

    wait, found = breaker.redis.call(count_and_read, fallback=(None, remembered))
    if found is not None and remembered is None:
        recent.put(key, found)
    return wait, found


def store(key: str, entry: Entry) -> None:
    backend = caches["default"]
    recent.put(key, entry)
    breaker.redis.call(
        lambda: get_redis_connection("default").set(
            backend.make_key(key), _encode(entry), ex=backend.default_timeout
        ),
        fallback=None,
    )


def _response_key(request: HttpRequest, version: int, query: list[tuple[str, object]]) -> str:
    return data_cache.response_key(
        version=version,
        url=f"{request.scheme}://{request.get_host()}{request.path}",
        path=request.path,
        query=query,
        fmt=requested_format(request),
    )


@functools.lru_cache(maxsize=4096)
def _cached_view_class(path_info: str, urlconf: str) -> type | None:
    """The CachedResponseMixin view the path routes to, if any (remembered: routes are fixed)."""
    try:
        view = resolve(path_info, urlconf).func
    except Resolver404:
        return None
    view_class = getattr(view, "cls", None)
    if view_class is not None and issubclass(view_class, CachedResponseMixin):
        return view_class
    return None


class ResponseCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(errors.API_PREFIX):
            return self.get_response(request)
        view_class = None
        if request.method in ("GET", "HEAD"):
            view_class = _cached_view_class(
                request.path_info, get_urlconf() or settings.ROOT_URLCONF
            )
        query = None
        if view_class is not None:
            query = filters.normalised_query(
                request.GET, view_class.filterset_class, view_class.pagination_class
            )
        if query is None:  # not cached: another method or view, or a 400 to come
            wait = throttling.seconds_to_wait(request)
            if wait is not None:
                return errors.throttled_response(wait)
            return self.get_response(request)

        try:
            version = data_cache.data_version()
        except DatabaseError as exc:
            return errors.database_unavailable(exc)
        key = _response_key(request, version.number, query)
        etag = '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'
        last_modified = int(version.changed_at.timestamp())
        wait, cached = lookup(request, key)
        if wait is not None:
            return errors.throttled_response(wait)
        conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if conditional is not None and (cached is not None or _etag_matched(request)):
            # 304 Not Modified (or 412 for a failed If-Match), for a response known to be a
            # 200: stored, or named by its ETag (only a 200 of this very key carries it).
            return _with_validators(conditional, etag, last_modified)

        if cached is not None:
            content_type, body = cached
            response = HttpResponse(body, content_type=content_type)
            response["X-Cache"] = "HIT"
        else:
            response = self.get_response(request)
            if response.status_code != 200:
                # Conditions are ignored then (RFC 9110, 13.2.1): a date in If-Modified-Since,
                # or If-None-Match: *, must not make a tree that does not exist a 304.
                return response
            store(key, (response["Content-Type"], response.content))
            if conditional is not None:
                return _with_validators(conditional, etag, last_modified)
            response["X-Cache"] = "MISS"
        return _with_validators(response, etag, last_modified)


def _etag_matched(request: HttpRequest) -> bool:
    """Whether the conditional response came from If-None-Match naming our ETag (not `*`)."""
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH", "").strip()
    return bool(if_none_match) and if_none_match != "*"


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

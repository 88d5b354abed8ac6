"""The API's front door: throttling, and responses answered from Redis by data version.

ResponseCacheMiddleware sits just after SecurityMiddleware, so a cached response skips the
rest of the stack (sessions, CSRF, authentication, messages: none of which an anonymous
read-only API uses) as well as DRF. For a GET or HEAD of a cached view (one with
CachedResponseMixin) it:

1. works out what the request means (trees.api.filters.normalised_query: its parameters as
   the view will validate and read them, OR values sorted and distinct). A request that
   fails validation skips the cache: the view answers its 400, never stored, and no SQL
   runs for it;
2. reads the data version from Postgres (one primary-key read, trees.cache.DataVersionRead):
   the question goes out first and its answer is read after step 4's Redis round trip,
   which meanwhile looks up the key of the version this process read last (the current one
   but for its first request after a sync, which then runs the view);
3. derives the response's key and ETag from the two (trees.cache.response_key); a matching
   If-None-Match is a 304 at once, since the version alone says whether anything changed
   (a matching If-Modified-Since too once the response is known to be a 200: stored, or
   the view's answer; a date can also name a tree that does not exist, which stays a 404);
4. counts the request against its client's throttle and reads the stored response, in one
   Redis command (throttling.count_and_read), or only counts it when this process holds the
   response in memory already (RecentResponses);
5. sends a stored response as it is: the hot path. Otherwise it runs the view, and stores
   its response if it is a 200, with its gzipped copy when the body is large enough, so
   that no hit compresses anything. Each encoding has its own ETag (the gzipped one ends in
   `-gzip"`); a client holding either gets a 304.

Every answer under /api/, cached or not, leaves through `finish`: RateLimit-* (the quota the
throttle's count gave), Allow, gzip for large bodies of views not cached here (the root, the
schema, the docs; streamed exports set their own encoding), Content-Length, and no body for
HEAD (Django leaves that to the server, and gunicorn warns about every such body). OPTIONS on
an endpoint is answered here, with Allow and no body; CORS headers and preflights come from
django-cors-headers, the middleware just before this one, so hits carry them too.

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
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_urlconf, resolve
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date, parse_etags
from django_redis import get_redis_connection

from trees import breaker
from trees import cache as data_cache
from trees.api import errors, filters, throttling
from trees.api.negotiation import FormatNegotiation, requested_format

# Bodies smaller than this are sent as they are: gzip would save less than one packet.
GZIP_MIN_BYTES = 1024
# Level 6 (zlib's default): within a few per cent of level 9's size at a third of its time.
# A stored response is compressed once, on its miss; only uncached views pay it each time.
GZIP_LEVEL = 6
COMPRESSIBLE_TYPES = (
    "application/json",
    "application/geo+json",
    "application/vnd.oai",  # the OpenAPI schema
    "application/javascript",
    "text/",
)
# The API is read-only: every endpoint takes these, and OPTIONS names them.
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
# Stored bodies are read under their key plus this: a new layout gets new keys, so a worker
# of the previous release never reads one it cannot parse (or the reverse) during a deploy.
STORED_LAYOUT = ":2"


class Entry(NamedTuple):
    """A stored response: its content type, its body, and the body gzipped (None when the
    body is too small to be worth it). Both are kept, so that no hit compresses or
    decompresses anything: the gzipped copy costs about a tenth of the body."""

    content_type: str
    body: bytes
    gzipped: bytes | None = None


def _size(entry: tuple) -> int:
    return sum(len(part) for part in entry[1:] if part)


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
        size = _size(entry)
        if key in self.entries or size > self.max_bytes // 4:
            return
        self.entries[key] = entry
        self.size += size
        while self.size > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.size -= _size(evicted)

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0


recent = RecentResponses(max_bytes=8 * 1024 * 1024)


def _encode(entry: Entry) -> bytes:
    head = f"{entry.content_type}\n{len(entry.body)}\n".encode()
    return head + entry.body + (entry.gzipped or b"")


def _decode(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    content_type, _, rest = raw.partition(b"\n")
    length, _, rest = rest.partition(b"\n")
    split = int(length)
    return Entry(content_type.decode(), rest[:split], rest[split:] or None)


def compressed(body: bytes) -> bytes | None:
    """The body gzipped, or None if it is too small to be worth it. mtime=0: the same body
    always gives the same bytes (one ETag per variant, whichever worker compressed it)."""
    if len(body) < GZIP_MIN_BYTES:
        return None
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


@functools.lru_cache(maxsize=256)  # clients send a handful of distinct values
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110, 12.5.3): named (or `x-gzip`) with a
    non-zero q, or `*` with a non-zero q when gzip is not named. Absent or empty: no."""
    star = None
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            return _quality(params) > 0
        if coding == "*":
            star = _quality(params) > 0
    return bool(star)


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def lookup(
    request: HttpRequest, key: str, scope: str = throttling.DEFAULT_SCOPE
) -> tuple[throttling.Quota | None, Entry | None]:
    """Throttle the request and find its stored response: one Redis command, or none.

    Returns the client's quota (or None) and the stored response (or None). With Redis
    unavailable: nobody waits, and only this process's memory can answer.
    """
    remembered = recent.get(key)
    backend = caches["default"]  # once: each `cache.` goes through a thread-local lookup

    def count_and_read() -> tuple[throttling.Quota | None, Entry | None]:
        if remembered is not None:
            quota, _ = throttling.count_and_read(request, backend=backend, scope=scope)
            return quota, remembered
        quota, (raw,) = throttling.count_and_read(
            request, backend.make_key(key + STORED_LAYOUT), backend=backend, scope=scope
        )
        return quota, _decode(raw)

    quota, found = breaker.redis.call(count_and_read, fallback=(None, remembered))
    if found is not None and remembered is None:
        recent.put(key, found)
    return quota, found


def store(key: str, entry: Entry) -> None:
    backend = caches["default"]
    recent.put(key, entry)
    breaker.redis.call(
        lambda: get_redis_connection("default").set(
            backend.make_key(key + STORED_LAYOUT), _encode(entry), ex=backend.default_timeout
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


class Route(NamedTuple):
    """What the middleware needs to know of the view a path routes to."""

    found: bool  # some view answers this path (Allow is sent, OPTIONS answered)
    view_class: type | None  # its class (a DRF view's, or a viewset's)
    cached: bool  # a CachedResponseMixin view: GET and HEAD go through the response cache
    scope: str  # its throttle scope (throttling.scope_of)


NO_ROUTE = Route(found=False, view_class=None, cached=False, scope=throttling.DEFAULT_SCOPE)


@functools.lru_cache(maxsize=4096)
def route(path_info: str, urlconf: str) -> Route:
    """The view the path routes to, resolved once per path (routes are fixed)."""
    try:
        view = resolve(path_info, urlconf).func
    except Resolver404:
        return NO_ROUTE
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    # A viewset's @action(throttle_scope=...) reaches its view as an init keyword.
    scope = getattr(view, "initkwargs", {}).get("throttle_scope")
    if scope is None:
        scope = throttling.scope_of(view_class)
    elif scope not in throttling.SCOPE_SETTINGS:
        scope = throttling.DEFAULT_SCOPE
    cached = view_class is not None and issubclass(view_class, CachedResponseMixin)
    return Route(found=True, view_class=view_class, cached=cached, scope=scope)


class _LastSeen:
    """The data version this process read last: the guess each cached request's Redis
    lookup starts with (ResponseCacheMiddleware.respond_cached)."""

    version: int | None = None


_last_seen = _LastSeen()


class ResponseCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path_info.startswith(errors.API_PREFIX):
            return self.get_response(request)
        target = route(request.path_info, get_urlconf() or settings.ROOT_URLCONF)
        quota, response = self.respond(request, target)
        return finish(request, response, target, quota)

    def respond(
        self, request: HttpRequest, target: Route
    ) -> tuple[throttling.Quota | None, HttpResponseBase]:
        query = None
        if target.cached and request.method in ("GET", "HEAD"):
            view_class = target.view_class
            query = filters.normalised_query(
                request.GET, view_class.filterset_class, view_class.pagination_class
            )
        if query is not None:
            return self.respond_cached(request, query)
        # Not cached: another method or view, or a 400 to come.
        quota = throttling.count(request, target.scope)
        if quota is not None and quota.wait is not None:
            return quota, errors.throttled_response(quota.wait)
        if request.method == "OPTIONS" and target.found:
            return quota, options_response()
        return quota, self.get_response(request)

    def respond_cached(
        self, request: HttpRequest, query: list[tuple[str, object]]
    ) -> tuple[throttling.Quota | None, HttpResponseBase]:
        # The Redis round trip (throttle count, stored body) overlaps Postgres's answer for the
        # version: it looks up the key of the version this process saw last, which is the
        # current one but for the first request after a sync. Only the version Postgres
        # gives decides what is sent; a wrong guess only makes that request run the view.
        guess = _last_seen.version
        guessed_key = None
        try:
            with data_cache.DataVersionRead() as read:
                if guess is not None:
                    guessed_key = _response_key(request, guess, query)
                    quota, cached = lookup(request, guessed_key)
        except DatabaseError as exc:
            return None, errors.database_unavailable(exc)
        version = read.version
        _last_seen.version = version.number
        if version.number == guess:
            key = guessed_key
        else:
            key = _response_key(request, version.number, query)
        if guessed_key is None:
            quota, cached = lookup(request, key)
        elif key != guessed_key:  # counted already; only this process's memory may have it
            cached = recent.get(key)
        identity_etag = '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'
        gzip_etag = identity_etag[:-1] + '-gzip"'
        last_modified = int(version.changed_at.timestamp())
        if quota is not None and quota.wait is not None:
            return quota, errors.throttled_response(quota.wait)
        wants_gzip = accepts_gzip(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        # Either variant's ETag names this very response (the same data, the same query):
        # a client holding either has it, whatever Accept-Encoding it sends now.
        matched = _matched_etag(request, (identity_etag, gzip_etag))

        if cached is not None:
            gzipped = wants_gzip and cached.gzipped is not None
            etag = matched or (gzip_etag if gzipped else identity_etag)
            conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
            if conditional is not None:
                # 304 Not Modified (or 412 for a failed If-Match), of a stored 200.
                length = len(cached.gzipped if etag == gzip_etag else cached.body)
                return quota, _with_validators(conditional, etag, last_modified, length)
            response = _from_entry(cached, gzipped)
            response["X-Cache"] = "HIT"
            return quota, _with_validators(response, etag, last_modified)

        if matched is not None:
            # Only a 200 of this very key carries its ETag: a 304 without the body.
            conditional = get_conditional_response(
                request, etag=matched, last_modified=last_modified
            )
            if conditional is not None:
                return quota, _with_validators(conditional, matched, last_modified)
        response = self.get_response(request)
        if response.status_code != 200 or response.streaming:
            # Conditions are ignored then (RFC 9110, 13.2.1): a date in If-Modified-Since,
            # or If-None-Match: *, must not make a tree that does not exist a 304.
            return quota, response
        entry = Entry(response["Content-Type"], response.content, compressed(response.content))
        store(key, entry)
        gzipped = wants_gzip and entry.gzipped is not None
        etag = gzip_etag if gzipped else identity_etag
        conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if conditional is not None:  # a date in If-Modified-Since, now known to be a 200's
            length = len(entry.gzipped if gzipped else entry.body)
            return quota, _with_validators(conditional, etag, last_modified, length)
        if gzipped:
            response.content = entry.gzipped
            response["Content-Encoding"] = "gzip"
        response["X-Cache"] = "MISS"
        return quota, _with_validators(response, etag, last_modified)


def _from_entry(entry: Entry, gzipped: bool) -> HttpResponse:
    if gzipped:
        response = HttpResponse(entry.gzipped, content_type=entry.content_type)
        response["Content-Encoding"] = "gzip"
        return response
    return HttpResponse(entry.body, content_type=entry.content_type)


def _matched_etag(request: HttpRequest, etags: tuple[str, ...]) -> str | None:
    """Which of `etags` If-None-Match names (weakly compared, as RFC 9110 has it), if any;
    `*` names none (it would also match a response that does not exist)."""
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH", "").strip()
    if not if_none_match or if_none_match == "*":
        return None
    named = {etag.removeprefix("W/") for etag in parse_etags(if_none_match)}
    return next((etag for etag in etags if etag in named), None)


@functools.lru_cache(maxsize=16)
def _http_date(timestamp: int) -> str:
    return http_date(timestamp)  # the same few versions, request after request


def _with_validators(
    response: HttpResponseBase, etag: str, last_modified: int, length: int | None = None
) -> HttpResponseBase:
    response["ETag"] = etag
    response["Last-Modified"] = _http_date(last_modified)
    # Caches may keep the response but must ask again before each reuse (max-age 0 by
    # default): a revalidation costs us one Redis read and a 304, and a client never sees
    # data older than the last sync. API_CACHE_MAX_AGE trades that for fewer requests.
    response["Cache-Control"] = f"public, max-age={settings.API_CACHE_MAX_AGE}, must-revalidate"
    patch_vary_headers(response, ["Accept", "Accept-Encoding"])
    if length is not None:
        # A 304 may say the length of what a 200 would send, and only that (RFC 9110, 8.6).
        response["Content-Length"] = str(length)
    return response


def options_response() -> HttpResponse:
    """OPTIONS on any API endpoint: the methods it takes (in Allow, added by `finish`), no body.
    (A CORS preflight, which carries Access-Control-Request-Method, is answered before this,
    by django-cors-headers.)"""
    response = HttpResponse()
    del response["Content-Type"]
    return response


def finish(
    request: HttpRequest,
    response: HttpResponseBase,
    target: Route,
    quota: throttling.Quota | None,
) -> HttpResponseBase:
    """What every API answer carries, however it was made (stored, a view's, a 304, 429, 400):
    the client's RateLimit-* quota (unless Redis is unavailable), Allow (on a path some view
    answers), gzip of a large body the client accepts it for, Content-Length, and for HEAD
    no body at all (Django leaves that to the server; gunicorn drops it, with a warning)."""
    if quota is not None:
        response["RateLimit-Limit"] = str(quota.limit)
        response["RateLimit-Remaining"] = str(quota.remaining)
        response["RateLimit-Reset"] = str(quota.reset)
    if target.found:  # (in one order: DRF's function views list them otherwise)
        response["Allow"] = ALLOWED_METHODS
    if not response.streaming and response.status_code not in (204, 304):
        if "Content-Encoding" not in response:
            _compress(request, response)
        response["Content-Length"] = str(len(response.content))
    if request.method == "HEAD":
        if response.streaming:
            # The first iterator stays among the response's closers: Django closes it.
            response.streaming_content = ()
        elif response.status_code not in (204, 304):
            response.content = b""
    return response


def _compress(request: HttpRequest, response: HttpResponse) -> None:
    """gzip for an answer no stored variant exists of (the root, the schema, the docs, errors),
    as Django's GZipMiddleware would, but inside this middleware: HEAD must see the headers a
    GET gets, and stored responses carry their compressed body already."""
    if len(response.content) < GZIP_MIN_BYTES or not response.get("Content-Type", "").startswith(
        COMPRESSIBLE_TYPES
    ):
        return
    patch_vary_headers(response, ["Accept-Encoding"])
    if not accepts_gzip(request.META.get("HTTP_ACCEPT_ENCODING", "")):
        return
    response.content = gzip.compress(response.content, compresslevel=GZIP_LEVEL, mtime=0)
    response["Content-Encoding"] = "gzip"
    etag = response.get("ETag")
    if etag and etag.startswith('"'):
        response["ETag"] = "W/" + etag  # as GZipMiddleware does: not the identity's bytes


class CachedResponseMixin:
    """Marks an API viewset whose GET responses ResponseCacheMiddleware caches."""

    # The cache keys a response by requested_format(): DRF must pick renderers by that rule.
    content_negotiation_class = FormatNegotiation

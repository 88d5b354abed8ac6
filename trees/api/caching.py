"""The response cache: GET and HEAD answered from Redis, under keys that carry the data version.

`cached_view` wraps a view and runs before DRF does, in this order:

1. throttle the client (every request, cached or not);
2. read the data version (one Redis GET) and build the response's key and ETag from it and
   the normalised request (trees.cache.response_key);
3. a matching If-None-Match or If-Modified-Since is answered 304 at once: no body is built
   or even read, since the version alone says whether anything changed;
4. a cached body is sent as stored, without running DRF at all: this is the hot path;
5. otherwise the view runs, and a 200 is stored for the next request. Errors are not stored.

Nothing stale can be served: a sync bumps the version in the transaction that changes the
data, so the first request after it computes a new key. If Redis is down, the cache backend
logs and ignores it, the version comes from Postgres, and every request runs the view.
"""

import functools
import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date

from trees import cache as data_cache
from trees.api import errors, throttling
from trees.api.negotiation import FormatNegotiation, requested_format


def cached_view(view):
    @functools.wraps(view)  # keeps .cls, .actions and .initkwargs for routers and the schema
    def serve(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = throttling.seconds_to_wait(request)
        if wait is not None:
            return errors.throttled_response(wait)
        if request.method not in ("GET", "HEAD"):
            return view(request, *args, **kwargs)  # DRF answers 405

        version = data_cache.data_version()
        key = data_cache.response_key(
            version=version.number,
            url=request.build_absolute_uri(request.path),
            path=request.path,
            query=[(name, value) for name, values in request.GET.lists() for value in values],
            fmt=requested_format(request),
        )
        etag = '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'
        last_modified = int(version.changed_at.timestamp())
        conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if conditional is not None:  # 304 Not Modified (or 412 for a failed If-Match)
            return _with_validators(conditional, etag, last_modified)

        cached = cache.get(key)
        if cached is not None:
            content_type, body = cached
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

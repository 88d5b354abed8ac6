"""Every API error is JSON: `status`, `detail` and, for bad query parameters, `errors`.

DRF's handler decides the status of each exception it knows; this one only reshapes the body
and makes it JSON even when GeoJSON was asked for. A database that cannot be reached is a
503 with Retry-After (the client should come back; nothing is wrong with its request).
Anything else DRF doesn't know stays a 500. Django's own 400s (a query string with too many
parameters, any SuspiciousOperation), raised before any view runs, come through handler400:
JSON under /api/ too.
"""

import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.exceptions import Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# The paths whose errors are JSON, and that ResponseCacheMiddleware throttles and caches.
API_PREFIX = ("/api/", "/tiles/")
COMPACT = {"separators": (",", ":")}  # as DRF writes JSON
# Seconds a client is asked to wait while the database is unavailable, and the least time
# between two warnings about it in the log (every request fails the same way meanwhile).
DATABASE_RETRY_AFTER = 5
_database_warned_at: float | None = None
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."


def error_body(status: int, detail: str, errors: dict[str, list[str]] | None = None) -> dict:
    body = {"status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):  # Postgres down, or the connection lost
        _warn_database_unavailable(exc)
        response = Response(
            error_body(503, DATABASE_UNAVAILABLE),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
        return _as_json(_logged(response), context)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data:
        response.data = error_body(response.status_code, str(data["detail"]))
    else:  # a ValidationError: messages keyed by parameter name
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        errors = {
            str(name): [str(message) for message in _as_list(messages)]
            for name, messages in errors.items()
        }
        detail = f"Invalid query parameter(s): {', '.join(errors)}."
        response.data = error_body(response.status_code, detail, errors)
    return _as_json(response, context)


def _as_json(response: Response, context) -> Response:
    request = context["request"]
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = JSONRenderer.media_type
    return response


def _warn_database_unavailable(exc: Exception) -> None:
    global _database_warned_at
    now = time.monotonic()
    if _database_warned_at is None or now - _database_warned_at >= DATABASE_RETRY_AFTER:
        _database_warned_at = now
        logger.warning("The API answers 503: the database is unavailable (%s)", exc)


def database_unavailable(exc: Exception) -> JsonResponse:
    """The 503 for callers that run before DRF (the response cache reads the data version)."""
    _warn_database_unavailable(exc)
    return _logged(
        JsonResponse(
            error_body(503, DATABASE_UNAVAILABLE),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
            json_dumps_params=COMPACT,
        )
    )


def _logged(response: HttpResponse) -> HttpResponse:
    """Mark a 503 as logged already: the warning per interval says it, and Django would
    otherwise log an ERROR line for each one (django.request), every request of an outage."""
    response._has_been_logged = True
    return response


def _as_list(messages) -> list:
    return messages if isinstance(messages, list) else [messages]


def throttled_response(wait: int) -> JsonResponse:
    """The 429 DRF would send, for callers that run before DRF (the response cache)."""
    detail = str(Throttled(wait=wait).detail)
    return JsonResponse(
        error_body(429, detail),
        status=429,
        headers={"Retry-After": str(wait)},
        json_dumps_params=COMPACT,
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ (e.g. a tree id that is not a number), HTML elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(404, "Not found."), status=404, json_dumps_params=COMPACT)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON under /api/, HTML elsewhere. Django logs the exception (in
    django.security)."""
    if not request.path.startswith(API_PREFIX):
        return defaults.bad_request(request, exception)
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        detail = f"Too many query parameters: at most {limit} are read."
    elif isinstance(exception, RequestDataTooBig):
        detail = "The request is too large."
    else:  # its message may quote the request (a Host header): not echoed
        detail = "Bad request."
    return JsonResponse(error_body(400, detail), status=400, json_dumps_params=COMPACT)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, HTML elsewhere. The exception is logged by Django."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            error_body(500, "Server error."), status=500, json_dumps_params=COMPACT
        )
    return defaults.server_error(request)

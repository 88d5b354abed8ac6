"""Every API error is JSON: `status`, `detail` and, for bad query parameters, `errors`.

DRF's handler decides the status of each exception it knows; this one only reshapes the body
and makes it JSON even when GeoJSON was asked for. Anything DRF doesn't know stays a 500.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.exceptions import Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"
COMPACT = {"separators": (",", ":")}  # as DRF writes JSON


def error_body(status: int, detail: str, errors: dict[str, list[str]] | None = None) -> dict:
    body = {"status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc, context):
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
    request = context["request"]
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = JSONRenderer.media_type
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


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, HTML elsewhere. The exception is logged by Django."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            error_body(500, "Server error."), status=500, json_dumps_params=COMPACT
        )
    return defaults.server_error(request)

"""Which format a request asks for: the one rule both the renderer choice and the cache use.

The response cache must key a response by its format before DRF has run, so the choice is
made by a plain function of the request (`requested_format`), and DRF's content negotiation
is this same function. Accept is read for one thing only, `application/geo+json`: anything
else gets the endpoint's default (JSON) instead of a 406, which is simpler for clients and
keeps the number of cache entries per URL at two.
"""

import functools

from django.http import HttpRequest
from rest_framework.exceptions import ValidationError as ParameterError
from rest_framework.negotiation import DefaultContentNegotiation

FORMAT_PARAMETER = "format"
GEOJSON_MEDIA_TYPE = "application/geo+json"


def requested_format(request: HttpRequest) -> str:
    """`?format=` if given, else `geojson` when Accept names GeoJSON, else `json`."""
    explicit = request.GET.get(FORMAT_PARAMETER)
    if explicit:
        return explicit
    return "geojson" if _accepts_geojson(request.META.get("HTTP_ACCEPT", "")) else "json"


@functools.lru_cache(maxsize=256)  # clients send a handful of distinct Accept headers
def _accepts_geojson(accept: str) -> bool:
    for media_range in accept.split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        if media_type.lower() == GEOJSON_MEDIA_TYPE and not _refused(params):
            return True
    return False


def _refused(params: list[str]) -> bool:
    """Whether a media range's parameters give it q=0 (`q=0`, `q=0.0`, `Q=0.000`: RFC 9110)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip()) == 0
            except ValueError:
                return False
    return False


class FormatNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        by_format = {renderer.format: renderer for renderer in renderers}
        name = requested_format(request)
        renderer = by_format.get(name)
        if renderer is None:
            if request.query_params.get(FORMAT_PARAMETER):
                raise ParameterError(
                    {FORMAT_PARAMETER: [f"Must be one of: {', '.join(by_format)}."]}
                )
            renderer = renderers[0]
        return renderer, renderer.media_type

"""The schema view (SchemaView, at the end), and what drf-spectacular's schema leaves out or
says in a way generated clients misread.

One postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) works on the finished
schema, by rules over the document alone, so every operation, today's and those to come,
follows them without a declaration each:

- **No security requirement.** The API is anonymous (no authentication classes, AllowAny),
  for which drf-spectacular writes `security: [{}]`, "no authentication is one option".
  openapi-python-client reads any `security` as "authenticated" and demands an
  AuthenticatedClient with a token for every call. An operation whose only option is `{}`
  gets none.
- **GeoJSON that a client can parse.** `trees/` and `trees/{tree_id}/` answer JSON or
  GeoJSON, by `format` or Accept. openapi-python-client (like most generators) parses every
  200 with the schema of its first media type it knows, so a GeoJSON answer went through the
  JSON model (`KeyError: 'results'`). The first media type's schema becomes a `oneOf` of
  both bodies: the generated client tries the GeoJSON model, then the JSON one, and returns
  whichever fits, typed as the union. The other media types keep their exact schema.
- **Bodies read as what they are.** A `format: binary` string is a file to openapi-python-
  client, which wraps what it read in BytesIO; but it reads a `text/*` body as text and a
  JSON one as parsed JSON, and BytesIO of either is a TypeError. So under a text media type
  (CSV) a binary string is a plain string, and under a JSON one (`application/geo+json`) any
  JSON object. (NDJSON is neither: a generator reads it as bytes only if told to, see the
  README's "Generating a client".)
- **Integer ids.** A path id is matched by digits (views.ID_PATTERN); drf-spectacular types
  it from the model, or as a string when the queryset is annotated (`species/{id}/`). A path
  parameter that is only digits is an integer, from 0 to the largest the pattern allows
  (`trees/{tree_id}/` is an integer already: drf-spectacular reads its model field).
- **Response headers**, as the server sends them:
  - `ETag`, `Last-Modified`, `Cache-Control`, `Vary` on the 200 and 304 of every operation
    that documents a 304 (only answers with validators can be revalidated);
  - a 503 with `Retry-After` on those same operations: they read the data version from
    Postgres first, and answer 503 while it is unreachable (trees.api.errors);
  - `Retry-After` on every 429;
  - `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` on every answer, documented
    as optional: they are left out while Redis (which counts) is unavailable.
"""

import copy
import re
import threading

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

JSON = "application/json"
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
DIGITS = re.compile(r"\^?\[0-9\]\{1,([0-9]+)\}\$?")

HEADERS = {
    "ETag": {
        "description": "Names this response's data version and parameters; send it back as "
        "`If-None-Match` for a 304 until the data changes.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Last-Modified": {
        "description": "When the data last changed (the last sync that changed it), as an "
        "HTTP date; send it back as `If-Modified-Since`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "Public, and must be revalidated after `max-age` (API_CACHE_MAX_AGE, "
        "0 by default) seconds.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Vary": {
        "description": "The request headers the response depends on (at least `Accept`).",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Limit": {
        "description": "Requests this client may send in the current window; absent while "
        "Redis is unavailable (the throttle then lets everything through).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests this client has left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the current window ends and the count starts again.",
        "schema": {"type": "integer", "minimum": 0},
    },
}
VALIDATORS = ("ETag", "Last-Modified", "Cache-Control", "Vary")
RATE_LIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
UNAVAILABLE = {
    "description": "The database is unavailable; retry after `Retry-After` seconds.",
    "content": {JSON: {"schema": ERROR_SCHEMA}},
}


def postprocess(result: dict, generator=None, request=None, public=None) -> dict:
    """The hook: each rule of the module docstring, applied to every operation."""
    result.setdefault("components", {})["headers"] = HEADERS
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _drop_anonymous_security(operation)
            _type_integer_ids(operation)
            _union_of_media_types(operation)
            _bodies_as_read(operation)
            _document_headers(operation)
    return result


def _drop_anonymous_security(operation: dict) -> None:
    if operation.get("security") == [{}]:
        del operation["security"]


def _type_integer_ids(operation: dict) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "path":
            continue
        schema = parameter.get("schema", {})
        match = DIGITS.fullmatch(schema.get("pattern", ""))
        if schema.get("type") != "string" or match is None:
            continue
        digits = int(match.group(1))
        kept = {key: schema[key] for key in ("description",) if key in schema}
        parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": 10**digits - 1, **kept}


def _union_of_media_types(operation: dict) -> None:
    for response in operation["responses"].values():
        content = response.get("content", {})
        schemas = [media["schema"] for media in content.values() if "schema" in media]
        if len(content) < 2 or len(schemas) != len(content):
            continue
        # The first media type's own schema goes last: a generated client takes the first
        # alternative that parses, and a GeoJSON body's `type` is always required, where a
        # JSON tree may have no required key at all (`fields=`) and would parse anything.
        others = [schema for schema in schemas[1:] if schema != schemas[0]]
        distinct = [s for i, s in enumerate(others) if s not in others[:i]]
        if distinct:
            first = next(iter(content.values()))
            first["schema"] = {"oneOf": [*distinct, schemas[0]]}


def _is_json(media_type: str) -> bool:
    return media_type == JSON or media_type.endswith("+json")


def _bodies_as_read(operation: dict) -> None:
    for response in operation["responses"].values():
        for media_type, media in response.get("content", {}).items():
            schema = media.get("schema", {})
            if schema.get("type") != "string" or schema.get("format") != "binary":
                continue
            if media_type.startswith("text/"):
                media["schema"] = {key: value for key, value in schema.items() if key != "format"}
            elif _is_json(media_type):
                media["schema"] = {"type": "object"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


def _document_headers(operation: dict) -> None:
    responses = operation["responses"]
    revalidated = "304" in responses
    if revalidated:
        responses.setdefault("503", copy.deepcopy(UNAVAILABLE))
    for status, response in responses.items():
        names = list(RATE_LIMIT)
        if revalidated and status in ("200", "304"):
            names += VALIDATORS
        if status in ("429", "503"):
            names.append("Retry-After")
        headers = response.setdefault("headers", {})
        for name in names:
            headers.setdefault(name, _ref(name))


# Schemas made by this process, by (API version, language). Cleared when a setting changes
# (tests override settings the schema reads, such as throttle rates).
_schemas: dict[tuple[str | None, str | None], dict] = {}
_schemas_lock = threading.Lock()


class SchemaView(SpectacularAPIView):
    """drf-spectacular's view, generating one schema at a time per process and keeping it.

    drf-spectacular's generator keeps the view it inspects in module-global state, so two
    threads of one gunicorn gthread worker generating at once break each other ("Schema
    generation REQUIRES a view instance", a 500; tfranzel/drf-spectacular#1123): the docs
    page and a client asking together was enough (tests/api/test_schema_server.py). The
    schema depends only on the code and the settings, so the first request per version and
    language makes it under a lock, and every later one reuses it (also sparing each ~0.3 s
    of generation).
    """

    def _get_schema_response(self, request: Request) -> Response:
        key = (request.version, translation.get_language())
        with _schemas_lock:
            schema = _schemas.get(key)
            if schema is None:
                generator = self.generator_class(
                    urlconf=self.urlconf, api_version=self.api_version
                )
                schema = generator.get_schema(request=request, public=self.serve_public)
                _schemas[key] = schema
        return Response(schema)


@receiver(setting_changed)
def _forget_schemas(**kwargs) -> None:
    with _schemas_lock:
        _schemas.clear()

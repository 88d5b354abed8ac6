"""Checks a response body against the API's own OpenAPI schema, as a schema fuzzer would."""

import functools

import jsonschema
from drf_spectacular.generators import SchemaGenerator


@functools.cache
def openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _as_json_schema(node):
    """OpenAPI 3.0 -> JSON Schema: `nullable` becomes a null alternative, and objects that
    list their properties allow no others, so an undocumented field fails the check."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_json_schema(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def response_schema(path: str, status: int, media_type: str, method: str = "get") -> dict:
    schema = openapi_schema()
    operation = schema["paths"][path][method]
    content = operation["responses"][str(status)]["content"][media_type]
    return {
        **_as_json_schema(content["schema"]),
        "components": _as_json_schema(schema["components"]),
    }


def assert_matches_schema(response, path: str) -> None:
    """`path` is the schema's template, e.g. /api/v1/trees/{tree_id}/."""
    media_type = response["Content-Type"].split(";")[0]
    schema = response_schema(path, response.status_code, media_type)
    jsonschema.Draft202012Validator(schema).validate(response.json())

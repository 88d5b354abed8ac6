"""GeoJSON (RFC 7946) output for trees: `?format=geojson` or `Accept: application/geo+json`."""

from rest_framework.renderers import JSONRenderer

FEATURE_KEYS = ("tree_id", "latitude", "longitude")  # a Feature's id and coordinates


def tree_feature(tree: dict, fields: tuple[str, ...] | None = None) -> dict:
    """A serialized tree as a GeoJSON Feature: a Point at [longitude, latitude], and as
    properties the rest, or only `fields` (`fields=`) if given."""
    properties = {
        name: value
        for name, value in tree.items()
        if name not in ("latitude", "longitude") and (fields is None or name in fields)
    }
    return {
        "type": "Feature",
        "id": tree["tree_id"],
        "geometry": {"type": "Point", "coordinates": [tree["longitude"], tree["latitude"]]},
        "properties": properties,
    }


def tree_feature_collection(page: dict, fields: tuple[str, ...] | None = None) -> dict:
    """A page of trees as a FeatureCollection; the paging links ride along as foreign members."""
    return {
        "type": "FeatureCollection",
        "features": [tree_feature(tree, fields) for tree in page["results"]],
        "next": page["next"],
        "previous": page["previous"],
    }


class GeoJSONRenderer(JSONRenderer):
    media_type = "application/geo+json"
    format = "geojson"
    feature_keys = FEATURE_KEYS

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Errors never get here: trees.api.errors renders them as plain JSON.
        if isinstance(data, dict):
            view = (renderer_context or {}).get("view")
            requested = getattr(view, "requested_fields", None)
            fields = requested() if requested is not None else None
            if "results" in data:
                data = tree_feature_collection(data, fields)
            else:
                data = tree_feature(data, fields)
        return super().render(data, accepted_media_type, renderer_context)

"""GeoJSON (RFC 7946) output for trees: `?format=geojson` or `Accept: application/geo+json`."""

from rest_framework.renderers import JSONRenderer


def tree_feature(tree: dict) -> dict:
    """A serialized tree as a GeoJSON Feature: a Point at [longitude, latitude]."""
    properties = {
        name: value for name, value in tree.items() if name not in ("latitude", "longitude")
    }
    return {
        "type": "Feature",
        "id": tree["tree_id"],
        "geometry": {"type": "Point", "coordinates": [tree["longitude"], tree["latitude"]]},
        "properties": properties,
    }


def tree_feature_collection(page: dict) -> dict:
    """A page of trees as a FeatureCollection; the paging links ride along as foreign members."""
    return {
        "type": "FeatureCollection",
        "features": [tree_feature(tree) for tree in page["results"]],
        "next": page["next"],
        "previous": page["previous"],
    }


class GeoJSONRenderer(JSONRenderer):
    media_type = "application/geo+json"
    format = "geojson"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Errors never get here: trees.api.errors renders them as plain JSON.
        if isinstance(data, dict):
            data = tree_feature_collection(data) if "results" in data else tree_feature(data)
        return super().render(data, accepted_media_type, renderer_context)

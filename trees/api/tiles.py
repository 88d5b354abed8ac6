"""Vector tiles of the trees and their TileJSON: thin views over trees.tiles.

Both take the filters of `trees/` (TreeFilterSet, through the same filter backend, so a bad
value is the same 400) and are cached by ResponseCacheMiddleware as the API's lists are:
under the data version, with ETag, Last-Modified and Cache-Control.
"""

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import ValidationError as ParameterError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from trees import tiles
from trees.api.caching import CachedResponseMixin
from trees.api.filters import FORMAT_PARAMETER, TreeFilterSet
from trees.api.views import COMMON_RESPONSES, ERROR, JSON
from trees.models import Tree

MVT = "application/vnd.mapbox-vector-tile"
MIN_ZOOM = 0
# Past this a client overzooms (scales the z16 tile): the points are all there already.
TILEJSON_MAX_ZOOM = 16
# The census's trees all lie in here (lon/lat), and the map opens on Midtown.
NYC_BOUNDS = [-74.2557, 40.4961, -73.7004, 40.9155]
NYC_CENTER = [-73.985, 40.758, 11]
ATTRIBUTION = (
    '<a href="https://data.cityofnewyork.us/d/uvpi-gqnh">2015 NYC Street Tree Census</a>, '
    "NYC Parks"
)
POINT_FIELDS = {
    "tree_id": "Number: the tree's id (as in /api/v1/trees/{tree_id}/); also the feature id",
    "species": "String: common name of the species, empty when none (dead trees, stumps)",
    "health": "String: Good, Fair or Poor; empty for dead trees and stumps",
    "status": "String: Alive, Dead or Stump",
    "dbh": "Number: trunk diameter at breast height, inches",
}
CELL_FIELDS = {
    "count": "Number: trees in the grid cell (zoom below 14)",
    "good": "Number: of them, in Good health",
    "fair": "Number: of them, in Fair health",
    "poor": "Number: of them, in Poor health",
}


# TileJSON 3.0.0 as this endpoint fills it in (the spec: github.com/mapbox/tilejson-spec).
TILEJSON = inline_serializer(
    "TileJSON",
    {
        "tilejson": drf_serializers.CharField(),
        "name": drf_serializers.CharField(),
        "attribution": drf_serializers.CharField(),
        "scheme": drf_serializers.CharField(),
        "tiles": drf_serializers.ListField(
            child=drf_serializers.CharField(help_text="URL template with {z}, {x} and {y}.")
        ),
        "minzoom": drf_serializers.IntegerField(),
        "maxzoom": drf_serializers.IntegerField(),
        "bounds": drf_serializers.ListField(child=drf_serializers.FloatField()),
        "center": drf_serializers.ListField(child=drf_serializers.FloatField()),
        "vector_layers": drf_serializers.ListField(child=drf_serializers.DictField()),
    },
)


class MVTRenderer(BaseRenderer):
    media_type = MVT
    format = "mvt"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else b""


class FilteredSchema(AutoSchema):
    """Documents the filter backend's parameters (the filters of `trees/`), which
    drf-spectacular does for list views only: neither a tile nor its TileJSON is a list."""

    def get_filter_backends(self):
        return getattr(self.view, "filter_backends", [])


def _tile_parameter(name: str, maximum: int, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": 0, "maximum": maximum},
        OpenApiParameter.PATH,
        description=description,
    )


class _FilteredTreesView(CachedResponseMixin, generics.GenericAPIView):
    """What a tile and the TileJSON share: the trees/ filters, the cache, the tile throttle."""

    queryset = Tree.objects.all()
    filterset_class = TreeFilterSet
    pagination_class = None
    throttle_scope = "tiles"
    schema = FilteredSchema()


class TileView(_FilteredTreesView):
    renderer_classes = [MVTRenderer]

    @extend_schema(
        summary="Vector tile of trees",
        description=(
            "A Mapbox Vector Tile (z/x/y as in Web Mercator/XYZ) of the trees matching the "
            "filters (the same as `trees/`). One layer, `trees` (extent 4096, buffer 64). "
            "From zoom 14 on, one point per tree (feature id = `tree_id`) with `tree_id`, "
            "`species`, `health`, `status` and `dbh`; below 14, one point per cell of a "
            "128x128 grid at the mean position of its trees, with `count`, `good`, `fair`, "
            "`poor` and mean `dbh`. An empty tile is a 204."
        ),
        operation_id="tiles_trees_retrieve",
        tags=["tiles"],
        parameters=[
            _tile_parameter("z", tiles.MAX_ZOOM, "Zoom level, 0 to 22."),
            _tile_parameter("x", 2**tiles.MAX_ZOOM - 1, "Column, 0 to 2^z - 1 (west first)."),
            _tile_parameter("y", 2**tiles.MAX_ZOOM - 1, "Row, 0 to 2^z - 1 (north first)."),
            OpenApiParameter(
                FORMAT_PARAMETER, str, enum=["mvt"], description="Only `mvt`, the default."
            ),
        ],
        responses={
            (200, MVT): OpenApiResponse(OpenApiTypes.BINARY, description="The tile."),
            204: OpenApiResponse(description="No tree matching the filters is in this tile."),
            304: COMMON_RESPONSES[304],
            # Errors are JSON, whatever the endpoint's own media type.
            (400, JSON): OpenApiResponse(
                ERROR,
                description="x or y out of range for z, z above 22, or a query parameter "
                "invalid; `errors` says which.",
            ),
            (404, JSON): OpenApiResponse(
                ERROR, description="Not a tile path (z, x or y not a number)."
            ),
            (429, JSON): COMMON_RESPONSES[429],
        },
    )
    def get(self, request, z: int, x: int, y: int):
        trees = self.filter_queryset(self.get_queryset())  # also answers 400 to a bad parameter
        if not tiles.is_valid_tile(z, x, y):
            raise ParameterError(
                {
                    "tile": [
                        f"No tile {z}/{x}/{y}: z is 0 to {tiles.MAX_ZOOM}, x and y 0 to 2^z - 1."
                    ]
                }
            )
        body = tiles.tile(z=z, x=x, y=y, trees=trees)
        if not body:
            return Response(status=204)
        return Response(body, content_type=MVT)


class TileJSONView(_FilteredTreesView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="TileJSON of the tree tiles",
        description="TileJSON 3.0.0 for `tiles/trees/{z}/{x}/{y}.mvt`: its URL template "
        "(absolute, with the filters given here, the same as `trees/`), zooms, bounds and "
        "the layer's fields. Give it to MapLibre as a vector source's `url`.",
        operation_id="tiles_trees_tilejson",
        tags=["tiles"],
        parameters=[
            OpenApiParameter(
                FORMAT_PARAMETER, str, enum=["json"], description="Only `json`, the default."
            )
        ],
        responses={
            200: TILEJSON,
            **COMMON_RESPONSES,
        },
    )
    def get(self, request):
        self.filter_queryset(self.get_queryset())  # answers 400 to a bad parameter
        template = reverse("tiles-trees", kwargs={"z": 0, "x": 0, "y": 0}).replace(
            "/0/0/0.mvt", "/{z}/{x}/{y}.mvt"
        )
        filters = [(k, v) for k, v in request.GET.lists() if k != FORMAT_PARAMETER]
        query = urlencode([(k, v) for k, values in filters for v in values])
        url = request.build_absolute_uri(template).replace("%7B", "{").replace("%7D", "}")
        return Response(
            {
                "tilejson": "3.0.0",
                "name": "NYC street trees",
                "attribution": ATTRIBUTION,
                "scheme": "xyz",
                "tiles": [f"{url}?{query}" if query else url],
                "minzoom": MIN_ZOOM,
                "maxzoom": TILEJSON_MAX_ZOOM,
                "bounds": NYC_BOUNDS,
                "center": NYC_CENTER,
                "vector_layers": [
                    {
                        "id": tiles.LAYER,
                        "description": "Trees from zoom 14, counts per grid cell below it.",
                        "minzoom": MIN_ZOOM,
                        "maxzoom": TILEJSON_MAX_ZOOM,
                        "fields": {**POINT_FIELDS, **CELL_FIELDS},
                    }
                ],
            }
        )

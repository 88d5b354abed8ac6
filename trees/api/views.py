"""The API's viewsets: declarations only. Queries live in trees.queries, validation in
trees.api.filters, response caching in trees.api.caching."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers as drf_serializers
from rest_framework import viewsets
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from trees import queries
from trees.api import serializers
from trees.api.caching import CachedResponseMixin
from trees.api.fields import ITEM_FIELDS_PARAMETER, TreeItemFilterSet
from trees.api.filters import GroupFilterSet, SpeciesFilterSet, TreeFilterSet
from trees.api.pagination import TreeCursorPagination
from trees.api.renderers import GeoJSONRenderer
from trees.models import Tree, TreeCount, TreeGroupCount

ERROR = serializers.ErrorSerializer
COMMON_RESPONSES = {
    304: OpenApiResponse(description="Not modified: the ETag or date you sent is current."),
    400: OpenApiResponse(ERROR, description="A query parameter is invalid; `errors` says which."),
    429: OpenApiResponse(ERROR, description="Too many requests; retry after `Retry-After` s."),
}
JSON = "application/json"
GEOJSON = "application/geo+json"
FORMAT = OpenApiParameter(
    "format",
    str,
    enum=["json", "geojson"],
    description="`geojson` for GeoJSON (as does `Accept: application/geo+json`); default `json`.",
)
# The JSON-only endpoints take `format` too (DRF's negotiation reads it): only `json`.
FORMAT_JSON = OpenApiParameter(
    "format", str, enum=["json"], description="Only `json`, the default; any other is a 400."
)
# A database id: digits, and few enough to fit a bigint (anything else is a JSON 404).
ID_PATTERN = r"[0-9]{1,18}"


@extend_schema_view(
    list=extend_schema(
        summary="List trees",
        description="Trees matching every filter given, paged by cursor in the `ordering` "
        "asked for (`tree_id` by default). JSON by default; GeoJSON FeatureCollection with "
        "`format=geojson` or `Accept: application/geo+json`.",
        parameters=[FORMAT],
        responses={
            (200, JSON): serializers.TreeSerializer,
            (200, GEOJSON): serializers.TreeFeatureCollectionSerializer,
            404: OpenApiResponse(
                ERROR, description="A `cursor` that no response gave: no such page."
            ),
            **COMMON_RESPONSES,
        },
    ),
    retrieve=extend_schema(
        summary="One tree",
        description="Everything the census says about one tree; a GeoJSON Feature with "
        "`format=geojson`.",
        parameters=[FORMAT, ITEM_FIELDS_PARAMETER],
        responses={
            (200, JSON): serializers.TreeDetailSerializer,
            (200, GEOJSON): serializers.TreeDetailFeatureSerializer,
            404: OpenApiResponse(ERROR, description="No tree has this id."),
            **COMMON_RESPONSES,
        },
    ),
)
class TreeViewSet(CachedResponseMixin, viewsets.ReadOnlyModelViewSet):
    queryset = queries.trees()
    filterset_class = TreeItemFilterSet
    pagination_class = TreeCursorPagination
    renderer_classes = [JSONRenderer, GeoJSONRenderer]
    lookup_value_regex = ID_PATTERN

    # A list reads dict rows with a few columns, one tree all of them (see the serializers).
    # Built once: composing this queryset anew cost more than cloning it.
    summaries = queries.tree_summaries()

    def get_queryset(self):
        if self.action != "list":
            return super().get_queryset()
        fields = self.selected_fields()
        return self.summaries.all() if fields is None else queries.tree_summaries(fields)

    def requested_fields(self) -> tuple[str, ...] | None:
        """The keys `fields=` asks for (None: all of them, or an invalid value that the
        filter backend is about to answer with a 400)."""
        try:
            return TreeItemFilterSet.selected_fields(self.request.query_params)
        except DjangoValidationError:
            return None

    def selected_fields(self) -> tuple[str, ...] | None:
        """The keys to serialize: those asked for, and a Feature's id and coordinates."""
        fields = self.requested_fields()
        if fields is not None and self.request.accepted_renderer.format == GeoJSONRenderer.format:
            fields = tuple(dict.fromkeys((*fields, *GeoJSONRenderer.feature_keys)))
        return fields

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "fields": self.selected_fields()}

    def get_serializer_class(self):
        if self.action == "list":
            return serializers.TreeSerializer
        return serializers.TreeDetailSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List species",
        description="Every species with its number of trees, by latin name unless `ordering` "
        "says otherwise. Use `id` as `species_id` in `trees/` and `stats/`. Given any of the "
        "tree filters of `trees/`, each species counts only the trees matching them, and "
        "species with none are left out (`borough=Bronx`: the Bronx's species).",
        parameters=[FORMAT_JSON],
        responses={200: serializers.SpeciesSerializer(many=True), **COMMON_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="One species",
        description="The species with its number of trees (of those matching the tree "
        "filters, if given: a 404 when it has none).",
        parameters=[FORMAT_JSON],
        responses={
            200: serializers.SpeciesSerializer,
            404: OpenApiResponse(ERROR, description="No species has this id."),
            **COMMON_RESPONSES,
        },
    ),
)
class SpeciesViewSet(CachedResponseMixin, viewsets.ReadOnlyModelViewSet):
    queryset = queries.species_with_tree_counts()
    serializer_class = serializers.SpeciesSerializer
    filterset_class = SpeciesFilterSet
    pagination_class = None  # about 130 species: one short list
    lookup_value_regex = ID_PATTERN


@extend_schema_view(
    list=extend_schema(
        summary="Tree statistics",
        description="Counts of the trees matching the filters (the same as `trees/`): by "
        "borough, status and health, the ten most common species, and a histogram of trunk "
        "diameters.",
        parameters=[FORMAT_JSON],
        responses={200: serializers.TreeStatsSerializer, **COMMON_RESPONSES},
    )
)
class StatsViewSet(CachedResponseMixin, viewsets.GenericViewSet):
    queryset = Tree.objects.all()
    serializer_class = serializers.TreeStatsSerializer
    filterset_class = TreeFilterSet
    pagination_class = None

    # Filters on the columns TreeCount counts by (and the response format).
    counted_parameters = frozenset(
        {
            "borough", "status", "health", "species", "species_id", "species_search",
            "dbh_min", "dbh_max", "format",
        }
    )  # fmt: skip

    def list(self, request):
        trees = self.filter_queryset(self.get_queryset())  # also answers 400 to a bad parameter
        if request.query_params.keys() <= self.counted_parameters:
            # The same filters on ~50,000 counts instead of 683,788 trees: a third of the time.
            trees = TreeFilterSet(request.query_params, queryset=TreeCount.objects.all()).qs
        return Response(self.get_serializer(queries.tree_stats(trees)).data)


@extend_schema_view(
    list=extend_schema(
        summary="Grouped aggregates",
        description="The trees matching the filters (the same as `trees/`), grouped by the "
        "columns `by` names: each group's count, mean and median trunk diameter, and share "
        "in Poor health, largest group first (then by the columns' values, nulls last). "
        "Each group carries only the columns grouped by; a `species` group its id and names. "
        "E.g. `by=borough`, `by=nta`, `by=species&borough=Bronx`.",
        parameters=[FORMAT_JSON],
        responses={200: serializers.GroupsSerializer, **COMMON_RESPONSES},
    )
)
class GroupsViewSet(CachedResponseMixin, viewsets.GenericViewSet):
    queryset = Tree.objects.all()
    serializer_class = serializers.GroupsSerializer
    filterset_class = GroupFilterSet
    pagination_class = None

    counted_parameters = StatsViewSet.counted_parameters | {"by"}
    # By one of TreeGroupCount's columns, with these parameters at most: from its counts.
    group_counted_parameters = frozenset({"by", "dbh_min", "dbh_max", "format"})

    def list(self, request):
        trees = self.filter_queryset(self.get_queryset())  # also answers 400 to a bad parameter
        by = GroupFilterSet.group_columns(request.query_params)
        if (
            request.query_params.keys() <= self.counted_parameters
            and set(by) <= queries.COUNTED_GROUP_COLUMNS
        ):
            # As stats/ does: the same filters and groups from ~50,000 counts.
            trees = GroupFilterSet(request.query_params, queryset=TreeCount.objects.all()).qs
        elif (
            request.query_params.keys() <= self.group_counted_parameters
            and len(by) == 1
            and by[0] in queries.GROUP_COUNTED_COLUMNS
        ):
            # By nta, say: one column's ~10,000 counts instead of every tree.
            counts = TreeGroupCount.objects.filter(column_name=by[0])
            trees = GroupFilterSet(request.query_params, queryset=counts).qs
        groups = queries.tree_groups(trees, by)
        body = {"by": by, "total": sum(group.count for group in groups), "groups": groups}
        return Response(self.get_serializer(body).data)


# The root's listing: (name, route name) of each endpoint, in the order shown.
ROOT_ENDPOINTS = (
    ("trees", "api:tree-list"),
    ("species", "api:species-list"),
    ("stats", "api:stats-list"),
    ("groups", "api:groups-list"),
)


@extend_schema(
    summary="API root",
    description="The endpoints (absolute URLs), the docs page and the OpenAPI schema.",
    responses={
        200: inline_serializer(
            "ApiRoot",
            {
                "endpoints": drf_serializers.DictField(child=drf_serializers.URLField()),
                "docs": drf_serializers.URLField(),
                "schema": drf_serializers.URLField(),
            },
        ),
        429: COMMON_RESPONSES[429],
    },
)
@api_view(["GET", "HEAD"])
@renderer_classes([JSONRenderer])
def api_root(request):
    """What a client or a person starting at /api/v1/ needs to find everything else."""
    return Response(
        {
            "endpoints": {
                name: request.build_absolute_uri(reverse(route)) for name, route in ROOT_ENDPOINTS
            },
            "docs": request.build_absolute_uri(reverse("api:docs")),
            "schema": request.build_absolute_uri(reverse("api:schema")),
        }
    )

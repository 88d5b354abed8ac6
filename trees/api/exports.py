"""`trees/export.csv`, `trees/export.geojson`, `trees/export.ndjson`: the bulk export views.

Declarations and HTTP only; the SQL and the streaming are trees.export's. The filters are
those of `trees/` (TreeExportFilterSet: the same 400s), validated before anything streams, so
a bad parameter is a JSON 400 and never a broken download.

Not in the response cache (an export is megabytes, and not CachedResponseMixin), but an
export carries an ETag and Last-Modified from the data version and the request's normalised
parameters, so a client that has it answers If-None-Match with a 304 and no COPY. HEAD
answers the headers without running the COPY. gzip is the view's own (Content-Encoding set
here, chunk by chunk), when Accept-Encoding allows it.
"""

import hashlib

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer

from trees import cache as data_cache
from trees import export, queries
from trees.api import filters
from trees.api.caching import accepts_gzip
from trees.api.fields import TreeExportFilterSet
from trees.api.serializers import ErrorSerializer, PointSerializer


class ErrorsAsJSON(BaseContentNegotiation):
    """The export's format is its path: whatever Accept says, an error is JSON (never a 406)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class TreeExportView(generics.GenericAPIView):
    """One export format (a subclass per path)."""

    queryset = queries.trees()
    filterset_class = TreeExportFilterSet
    pagination_class = None
    renderer_classes = [JSONRenderer]  # errors only: the export itself is streamed bytes
    content_negotiation_class = ErrorsAsJSON
    throttle_scope = "export"

    extension: str
    media_type: str
    rows = staticmethod(export.csv_rows)

    def get(self, request, *args, **kwargs):
        trees = self.filter_queryset(self.get_queryset())  # a 400 here, before any byte
        fields = TreeExportFilterSet.selected_fields(request.query_params) or export.EXPORT_COLUMNS
        version = data_cache.data_version()
        gzip = accepts_gzip(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        etag, last_modified = self.validators(version, gzip)
        conditional = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if conditional is not None:
            return self.with_headers(conditional, etag, last_modified, version, gzip)
        if request.method == "HEAD":
            response = HttpResponse(content_type=self.media_type)
        else:
            chunks = self.rows(trees, fields)
            response = StreamingHttpResponse(
                export.gzipped(chunks) if gzip else chunks, content_type=self.media_type
            )
        return self.with_headers(response, etag, last_modified, version, gzip)

    def validators(self, version: data_cache.Version, gzip: bool) -> tuple[str, int]:
        """An ETag that changes with the data, the parameters' meaning and the encoding."""
        query = filters.normalised_query(
            self.request.query_params, self.filterset_class, self.pagination_class
        )
        canonical = repr((version.number, self.extension, gzip, sorted(query or [])))
        digest = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
        return f'"{digest}"', int(version.changed_at.timestamp())

    def with_headers(self, response, etag, last_modified, version, gzip):
        response["ETag"] = etag
        response["Last-Modified"] = http_date(last_modified)
        response["Cache-Control"] = "public, max-age=0, must-revalidate"
        if response.status_code == 200:
            name = f"trees-{version.changed_at:%Y-%m-%d}-v{version.number}.{self.extension}"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            if gzip:
                response["Content-Encoding"] = "gzip"
        patch_vary_headers(response, ["Accept-Encoding"])
        return response


class ExportFeatureSerializer(serializers.Serializer):
    """Schema only: a Feature of the GeoJSON exports (properties: the `fields` columns)."""

    type = serializers.ChoiceField(choices=["Feature"])
    id = serializers.IntegerField(help_text="The tree_id.")
    geometry = PointSerializer()
    properties = serializers.DictField(
        help_text="The export's columns but the coordinates (or those `fields` names)."
    )


class ExportFeatureCollectionSerializer(serializers.Serializer):
    """Schema only: the body of export.geojson."""

    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = ExportFeatureSerializer(many=True)


def _schema(kind: str, media_type: str, what: str, body=OpenApiTypes.BINARY):
    return extend_schema(
        summary=f"Export trees as {kind}",
        description=f"{what} Every filter of `trees/` applies (the same values and 400s); "
        "`fields` chooses the columns. Streamed whole, without paging; gzipped when "
        "`Accept-Encoding` allows. `Content-Disposition` names a file "
        "`trees-<date>-v<data version>`.",
        filters=True,  # not a list action, but it takes the filters of one
        responses={
            (200, media_type): OpenApiResponse(body, description=what),
            304: OpenApiResponse(
                description="Not modified: the ETag or date you sent is current."
            ),
            400: OpenApiResponse(ErrorSerializer, description="A query parameter is invalid."),
            429: OpenApiResponse(ErrorSerializer, description="Too many exports; retry later."),
        },
    )


@_schema(
    "CSV",
    "text/csv",
    "CSV with one header row of the column names, in the documented order.",
)
class TreeCSVExportView(TreeExportView):
    extension = "csv"
    media_type = export.CSV_MEDIA_TYPE
    rows = staticmethod(export.csv_rows)


@_schema(
    "GeoJSON",
    "application/geo+json",
    "One GeoJSON FeatureCollection of every tree.",
    ExportFeatureCollectionSerializer,
)
class TreeGeoJSONExportView(TreeExportView):
    extension = "geojson"
    media_type = export.GEOJSON_MEDIA_TYPE
    rows = staticmethod(export.feature_collection)


@_schema(
    "newline-delimited GeoJSON",
    "application/x-ndjson",
    "One GeoJSON Feature per line (GDAL's GeoJSONSeq reads it).",
)
class TreeNDJSONExportView(TreeExportView):
    extension = "ndjson"
    media_type = export.NDJSON_MEDIA_TYPE
    rows = staticmethod(export.feature_lines)

"""A URLconf for the throttle-scope tests: the API, plus views in the `export` scope."""

from django.http import StreamingHttpResponse
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class ExportLikeView(APIView):
    """Stands in for an export: counted against API_EXPORT_THROTTLE_RATE."""

    throttle_scope = "export"

    def get(self, request):
        return Response({"exported": True})


class StreamedExportLikeView(APIView):
    """Streams its body, as the exports do: HEAD must send none of it."""

    throttle_scope = "export"

    def get(self, request):
        rows = (f"{n},tree\n".encode() for n in range(10_000))
        response = StreamingHttpResponse(rows, content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="trees.csv"'
        return response


urlpatterns = [
    path("api/v1/", include("trees.api.urls")),
    path("api/v1/test-export/", ExportLikeView.as_view()),
    path("api/v1/test-export.csv", StreamedExportLikeView.as_view()),
]

"""A URLconf for the throttle-scope tests: the API, plus a view in the `export` scope."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class ExportLikeView(APIView):
    """Stands in for an export: counted against API_EXPORT_THROTTLE_RATE."""

    throttle_scope = "export"

    def get(self, request):
        return Response({"exported": True})


urlpatterns = [
    path("api/v1/", include("trees.api.urls")),
    path("api/v1/test-export/", ExportLikeView.as_view()),
]

"""Routes of /api/v1/: its root, the four resources, the tree exports, the OpenAPI schema
and its docs page."""

from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from trees.api import exports, schema, views

router = SimpleRouter()
router.register("trees", views.TreeViewSet, basename="tree")
router.register("species", views.SpeciesViewSet, basename="species")
router.register("stats", views.StatsViewSet, basename="stats")
router.register("groups", views.GroupsViewSet, basename="groups")

app_name = "api"
urlpatterns = [
    path("", views.api_root, name="root"),
    path("trees/export.csv", exports.TreeCSVExportView.as_view(), name="tree-export-csv"),
    path(
        "trees/export.geojson",
        exports.TreeGeoJSONExportView.as_view(),
        name="tree-export-geojson",
    ),
    path("trees/export.ndjson", exports.TreeNDJSONExportView.as_view(), name="tree-export-ndjson"),
    path("", include(router.urls)),
    path("schema/", schema.SchemaView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (docs/?script), since the
    # Content-Security-Policy allows no inline script. (No Redoc page: its bundle always
    # loads its logo from cdn.redoc.ly, and the docs must not send visitors elsewhere.)
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]

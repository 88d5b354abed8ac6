"""Routes of /api/v1/: the three resources, the OpenAPI schema and its docs page."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from trees.api import views

router = SimpleRouter()
router.register("trees", views.TreeViewSet, basename="tree")
router.register("species", views.SpeciesViewSet, basename="species")
router.register("stats", views.StatsViewSet, basename="stats")

app_name = "api"
urlpatterns = [
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]

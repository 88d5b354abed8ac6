"""URL configuration: the admin and the API (health probes are answered by middleware)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("trees.api.urls")),
]

# JSON under /api/, Django's HTML pages elsewhere.
handler404 = "trees.api.errors.page_not_found"
handler500 = "trees.api.errors.server_error"

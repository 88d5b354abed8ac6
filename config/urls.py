"""URL configuration: the map, the admin and the API (health probes are answered by middleware)."""

from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from trees import views


def favicon(request):
    """Browsers ask every site for /favicon.ico; without one, each visit logs a 404."""
    return redirect(static("trees/favicon.svg"), permanent=True)


urlpatterns = [
    path("", views.map_page, name="map"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("trees.api.urls")),
    path("favicon.ico", favicon),
]

# JSON under /api/, Django's HTML pages elsewhere.
handler400 = "trees.api.errors.bad_request"
handler404 = "trees.api.errors.page_not_found"
handler500 = "trees.api.errors.server_error"

"""URL configuration: the map, the admin, the API and its vector tiles (health probes are
answered by middleware)."""

from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, register_converter

from trees import views
from trees.api import tiles


class SignedIntConverter:
    """Tile numbers with a sign: a negative one is a JSON 400 (no such tile), not a 404."""

    regex = "-?[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(SignedIntConverter, "tile")


def favicon(request):
    """Browsers ask every site for /favicon.ico; without one, each visit logs a 404."""
    return redirect(static("trees/favicon.svg"), permanent=True)


urlpatterns = [
    path("", views.map_page, name="map"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("trees.api.urls")),
    path("tiles/trees.json", tiles.TileJSONView.as_view(), name="tiles-trees-json"),
    path(
        "tiles/trees/<tile:z>/<tile:x>/<tile:y>.mvt",
        tiles.TileView.as_view(),
        name="tiles-trees",
    ),
    path("favicon.ico", favicon),
]

# JSON under /api/ and /tiles/, Django's HTML pages elsewhere.
handler400 = "trees.api.errors.bad_request"
handler404 = "trees.api.errors.page_not_found"
handler500 = "trees.api.errors.server_error"

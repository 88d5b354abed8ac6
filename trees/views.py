"""The map page at `/`: every tree, drawn by MapLibre GL JS from the vector tiles (/tiles/).

The page itself is a plain template; what its script needs (the URLs it calls, the filters'
choices, the optional basemap) travels as JSON in a `json_script` element, since the
Content-Security-Policy allows no inline script. The filters are the API's own parameters
(trees.api.filters.TreeFilterSet), so the page's query string, the tiles' and the API's
are one and the same.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse

from trees.models import Borough, Health, Status

# The filters the panel offers: categorical ones as checkboxes (several mean any of them).
CHOICE_FILTERS = (
    ("borough", "Borough", Borough),
    ("health", "Health", Health),
    ("status", "Status", Status),
)
# Every parameter the page keeps in its URL and passes on to the tiles and the API.
FILTER_PARAMETERS = ("borough", "species", "health", "status", "dbh_min", "dbh_max")
# From this zoom the tiles carry one point per tree (below it, counts per grid cell).
TREE_ZOOM = 14
# The five boroughs, [west, south, east, north].
NYC_BOUNDS = (-74.2591, 40.4774, -73.7004, 40.9176)
ID_PLACEHOLDER = "TREE_ID"


def map_page(request: HttpRequest) -> HttpResponse:
    choices = [
        {
            "name": name,
            "label": label,
            "options": [
                {"value": value, "label": text, "checked": value in request.GET.getlist(name)}
                for value, text in enumerate_choices(enum)
            ],
        }
        for name, label, enum in CHOICE_FILTERS
    ]
    is_staff = request.user.is_authenticated and request.user.is_staff
    config = {
        "maplibre": static("vendor/maplibre-gl/maplibre-gl.mjs"),
        "maplibreWorker": static("vendor/maplibre-gl/maplibre-gl-worker.mjs"),
        "tiles": reverse("tiles-trees", kwargs={"z": 0, "x": 0, "y": 0}).replace(
            "/0/0/0.mvt", "/{z}/{x}/{y}.mvt"
        ),
        "treeZoom": TREE_ZOOM,
        "bounds": NYC_BOUNDS,
        "filters": list(FILTER_PARAMETERS),
        "api": {
            "trees": reverse("api:tree-list"),
            "species": reverse("api:species-list"),
            "stats": reverse("api:stats-list"),
        },
        # Only for staff: the page of a tree in the admin, ID_PLACEHOLDER standing for its id.
        "adminTree": (
            reverse("admin:trees_tree_change", args=[ID_PLACEHOLDER]) if is_staff else None
        ),
        "idPlaceholder": ID_PLACEHOLDER,
        "basemap": (
            {"url": settings.MAP_BASEMAP_URL, "attribution": settings.MAP_BASEMAP_ATTRIBUTION}
            if settings.MAP_BASEMAP_URL
            else None
        ),
    }
    context = {
        "config": config,
        "choices": choices,
        "species": request.GET.get("species", ""),
        "dbh_min": request.GET.get("dbh_min", ""),
        "dbh_max": request.GET.get("dbh_max", ""),
        "is_staff": is_staff,
    }
    return render(request, "trees/map.html", context)


def enumerate_choices(enum) -> list[tuple[str, str]]:
    return [(str(value), str(label)) for value, label in enum.choices]

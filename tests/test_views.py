"""The map page at `/`, through Django's test client: what it references and to whom."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from trees.views import FILTER_PARAMETERS, ID_PLACEHOLDER

pytestmark = pytest.mark.django_db

MAP = reverse("map")


def config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="map-config" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_the_map_page_references_the_vendored_maplibre_and_its_own_assets(client):
    response = client.get(MAP)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert '<link rel="stylesheet" href="/static/vendor/maplibre-gl/maplibre-gl.css">' in html
    assert '<link rel="modulepreload" href="/static/vendor/maplibre-gl/maplibre-gl.mjs">' in html
    assert '<script type="module" src="/static/trees/map.js"></script>' in html
    assert '<link rel="stylesheet" href="/static/trees/map.css">' in html
    page_config = config(response)
    assert page_config["maplibre"] == "/static/vendor/maplibre-gl/maplibre-gl.mjs"
    assert page_config["maplibreWorker"] == "/static/vendor/maplibre-gl/maplibre-gl-worker.mjs"
    # The only scripts: the JSON config and the module; no inline code (the CSP forbids it).
    assert html.count("<script") == 2
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_the_map_page_carries_the_filter_config(client):
    page_config = config(client.get(MAP))
    assert page_config["filters"] == list(FILTER_PARAMETERS)
    assert page_config["tiles"] == "/tiles/trees/{z}/{x}/{y}.mvt"
    assert page_config["treeZoom"] == 14
    assert page_config["api"] == {
        "trees": "/api/v1/trees/",
        "species": "/api/v1/species/",
        "stats": "/api/v1/stats/",
    }
    assert page_config["basemap"] is None
    assert page_config["adminTree"] is None


def test_the_filter_panel_offers_every_census_value_and_shows_the_query_string(client):
    response = client.get(
        MAP, {"borough": ["Bronx", "Queens"], "health": "Poor", "species": "pin oak", "dbh_min": 7}
    )
    html = response.content.decode()
    for name, values in {
        "borough": ["Manhattan", "Bronx", "Brooklyn", "Queens", "Staten Island"],
        "health": ["Good", "Fair", "Poor"],
        "status": ["Alive", "Dead", "Stump"],
    }.items():
        for value in values:
            assert f'name="{name}" value="{value}"' in html
    assert 'name="borough" value="Bronx" checked' in html
    assert 'name="borough" value="Queens" checked' in html
    assert 'name="borough" value="Manhattan">' in html
    assert 'name="health" value="Poor" checked' in html
    assert 'name="species" list="species-list" value="pin oak"' in html
    assert 'name="dbh_min" min="0" max="500" step="1" inputmode="numeric" value="7"' in html
    for label in ("Borough", "Health", "Status", "Species", "Trunk diameter (inches)"):
        assert f"<legend>{label}</legend>" in html


def test_the_page_links_the_api_docs_and_the_admin(client):
    html = client.get(MAP).content.decode()
    assert f'href="{reverse("api:docs")}"' in html
    assert f'href="{reverse("admin:index")}"' in html


def test_a_query_value_is_escaped(client):
    html = client.get(MAP, {"species": '"><script>alert(1)</script>'}).content.decode()
    assert "<script>alert(1)" not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def test_only_staff_get_the_admin_link_of_a_tree(client):
    user = get_user_model().objects.create_user("visitor", password="a-long-password-31")
    client.force_login(user)
    assert config(client.get(MAP))["adminTree"] is None
    assert 'data-staff="true"' not in client.get(MAP).content.decode()

    user.is_staff = True
    user.save()
    response = client.get(MAP)
    assert config(response)["adminTree"] == f"/admin/trees/tree/{ID_PLACEHOLDER}/change/"
    assert 'data-staff="true"' in response.content.decode()


def test_a_configured_basemap_is_passed_to_the_page(client, settings):
    settings.MAP_BASEMAP_URL = "https://tile.example.org/{z}/{x}/{y}.png"
    settings.MAP_BASEMAP_ATTRIBUTION = "© Example contributors"
    assert config(client.get(MAP))["basemap"] == {
        "url": "https://tile.example.org/{z}/{x}/{y}.png",
        "attribution": "© Example contributors",
    }

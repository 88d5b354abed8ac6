"""The map page in a real Chromium, drawing the real vector tiles of the synced census.

MapLibre draws with WebGL, which headless Chromium has through SwiftShader (software): these
tests add the switches for it, the other browser tests keep their own. What is drawn is read
back from a screenshot of the map: its pixels that are not the plain background.
"""

import base64
import re

import pytest
from django.db.models import Count
from playwright.sync_api import Page, expect

from tests.browser.conftest import Browser
from trees.models import Tree

pytestmark = pytest.mark.django_db(transaction=True)

BACKGROUND = (0xF3, 0xF1, 0xEC)  # map.js's background colour
ZOOM = 15  # >= 14: one dot per tree


@pytest.fixture
def chromium_extra_args() -> list[str]:
    return ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"]


def wait_for_map(page: Page) -> None:
    """Until the map has drawn everything it asked for (map.js marks each `idle`)."""
    page.wait_for_function("() => document.body.dataset.mapIdle === 'true'", timeout=30_000)


def open_map(browser: Browser, query: str = "") -> Page:
    page = browser.page
    page.goto(f"/{query}")
    page.wait_for_function("() => window.treeMap !== undefined")
    wait_for_map(page)
    return page


def jump_to(page: Page, longitude: float, latitude: float, zoom: float = ZOOM) -> None:
    page.evaluate(
        """([lng, lat, zoom]) => {
            document.body.dataset.mapIdle = "false";
            window.treeMap.jumpTo({center: [lng, lat], zoom});
        }""",
        [longitude, latitude, zoom],
    )
    wait_for_map(page)


def drawn_pixels(page: Page) -> int:
    """Pixels of the map canvas that differ from the background, controls hidden."""
    page.add_style_tag(content=".maplibregl-control-container, #loading { visibility: hidden }")
    png = page.locator("canvas.maplibregl-canvas").screenshot()
    page.add_style_tag(content=".maplibregl-control-container { visibility: visible }")
    return page.evaluate(
        """async ([data, background]) => {
            const image = new Image();
            image.src = `data:image/png;base64,${data}`;
            await image.decode();
            const canvas = document.createElement("canvas");
            canvas.width = image.width;
            canvas.height = image.height;
            const context = canvas.getContext("2d");
            context.drawImage(image, 0, 0);
            const pixels = context.getImageData(0, 0, image.width, image.height).data;
            let count = 0;
            for (let i = 0; i < pixels.length; i += 4) {
                const off = Math.abs(pixels[i] - background[0]) + Math.abs(pixels[i + 1] -
                    background[1]) + Math.abs(pixels[i + 2] - background[2]);
                if (off > 30) count += 1;
            }
            return count;
        }""",
        [base64.b64encode(png).decode(), list(BACKGROUND)],
    )


def rendered_tree_ids(page: Page) -> set[int]:
    return set(
        page.evaluate(
            """() => window.treeMap.queryRenderedFeatures({layers: ["tree-points"]})
                .map((feature) => feature.properties.tree_id)"""
        )
    )


def tree_pixel(page: Page, longitude: float, latitude: float) -> tuple[float, float]:
    """Where a point is on the page: map.project gives canvas pixels, plus the canvas's place."""
    x, y = page.evaluate(
        """([lng, lat]) => {
            const point = window.treeMap.project([lng, lat]);
            const box = window.treeMap.getCanvas().getBoundingClientRect();
            return [box.left + point.x, box.top + point.y];
        }""",
        [longitude, latitude],
    )
    return x, y


def assert_only_this_site(browser: Browser) -> None:
    others = [
        url
        for url in browser.requests
        if not url.startswith(f"{browser.site.url}/") and not url.startswith(("data:", "blob:"))
    ]
    assert others == [], others


@pytest.fixture
def health_counts(site) -> dict[str, int]:
    """Trees by recorded health, read before the browser starts (see conftest)."""
    rows = Tree.objects.exclude(health="").values_list("health").annotate(trees=Count("tree_id"))
    return dict(rows)


def test_the_map_draws_the_trees_from_the_tiles(health_counts, browser: Browser):
    tree = browser.site.tree
    page = open_map(browser)
    jump_to(page, tree.longitude, tree.latitude)
    browser.screenshot("map-trees")
    assert tree.tree_id in rendered_tree_ids(page)
    assert drawn_pixels(page) > 20
    assert any("/tiles/trees/15/" in url or "/tiles/trees/14/" in url for url in browser.requests)
    # The totals are the census's, from stats/.
    expect(page.locator("#total")).to_have_text("300 trees")
    for health, count in health_counts.items():
        expect(page.locator("#by-health")).to_contain_text(f"{health} health{count}")
    # Zoomed out: the grid cells' counts.
    jump_to(page, tree.longitude, tree.latitude, zoom=10)
    assert page.evaluate("window.treeMap.queryRenderedFeatures({layers: ['tree-cells']}).length")
    assert drawn_pixels(page) > 20
    browser.screenshot("map-cells")
    assert_only_this_site(browser)
    assert browser.console_errors == []


def test_a_filter_changes_what_is_drawn_and_the_url_and_back_restores_it(browser: Browser):
    tree = browser.site.tree
    other = next(b for b in ("Manhattan", "Bronx", "Brooklyn") if b != tree.borough)
    page = open_map(browser)
    jump_to(page, tree.longitude, tree.latitude)
    before = drawn_pixels(page)
    assert tree.tree_id in rendered_tree_ids(page)

    page.locator("#filters").get_by_label(other, exact=True).check()
    expect(page).to_have_url(re.compile(rf"\?borough={re.escape(other)}#map="))
    wait_for_map(page)
    browser.screenshot("map-filtered")
    assert tree.tree_id not in rendered_tree_ids(page)
    assert drawn_pixels(page) < before
    tiles = page.evaluate("window.treeMap.getSource('trees').tiles[0]")
    assert tiles.endswith(f"/tiles/trees/{{z}}/{{x}}/{{y}}.mvt?borough={other}")
    expect(page.locator("#total")).not_to_have_text("300 trees")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/#map="))
    wait_for_map(page)
    expect(page.locator("#filters").get_by_label(other, exact=True)).not_to_be_checked()
    assert tree.tree_id in rendered_tree_ids(page)
    expect(page.locator("#total")).to_have_text("300 trees")

    page.go_forward()
    expect(page.locator("#filters").get_by_label(other, exact=True)).to_be_checked()
    assert_only_this_site(browser)
    assert browser.console_errors == []


def test_a_shared_link_opens_with_its_filters(browser: Browser):
    site = browser.site
    page = open_map(browser, f"?borough={site.borough}&health={site.health}")
    filters = page.locator("#filters")
    expect(filters.get_by_label(site.borough, exact=True)).to_be_checked()
    expect(filters.get_by_label(site.health, exact=True)).to_be_checked()
    expect(page.locator("#total")).to_have_text(f"{len(site.filtered_ids)} trees")
    tiles = page.evaluate("window.treeMap.getSource('trees').tiles[0]")
    assert tiles.endswith(f"?borough={site.borough}&health={site.health}".replace(" ", "+"))
    assert browser.console_errors == []


def test_a_click_on_a_tree_opens_its_popup(browser: Browser):
    tree = browser.site.tree
    page = open_map(browser)
    jump_to(page, tree.longitude, tree.latitude, zoom=17)
    page.mouse.click(*tree_pixel(page, tree.longitude, tree.latitude))
    popup = page.locator(".tree-popup")
    expect(popup).to_have_attribute("data-tree-id", str(tree.tree_id))
    expect(popup.get_by_role("heading")).to_have_text(f"Tree {tree.tree_id}")
    expect(popup).to_contain_text(tree.species.common_name)
    expect(popup.get_by_role("link", name="API record")).to_have_attribute(
        "href", f"/api/v1/trees/{tree.tree_id}/"
    )
    expect(popup.get_by_role("link", name="Admin")).to_have_count(0)
    browser.screenshot("map-popup")
    assert_only_this_site(browser)
    assert browser.console_errors == []


def test_staff_get_the_admin_link_in_the_popup(browser: Browser):
    tree = browser.site.tree
    browser.log_in()
    page = open_map(browser)
    jump_to(page, tree.longitude, tree.latitude, zoom=17)
    page.mouse.click(*tree_pixel(page, tree.longitude, tree.latitude))
    popup = page.locator(".tree-popup")
    admin = popup.get_by_role("link", name="Admin")
    expect(admin).to_have_attribute("href", f"/admin/trees/tree/{tree.tree_id}/change/")
    admin.click()
    expect(page.get_by_role("heading", name=f"Tree {tree.tree_id}")).to_be_visible()
    assert browser.console_errors == []


def test_on_a_phone_the_panel_folds_away(browser: Browser):
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 800})
    open_map(browser)
    toggle = page.get_by_role("button", name="Filters")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#panel")).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#filters").get_by_label("Queens", exact=True)).to_be_visible()
    browser.screenshot("map-phone")
    # Keyboard: the panel's controls are reachable with Tab, in order, and show focus.
    page.locator("#filters").get_by_label("Manhattan", exact=True).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "Bronx"
    assert browser.console_errors == []

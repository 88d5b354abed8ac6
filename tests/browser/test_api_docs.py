"""The API's docs pages in a real browser: every endpoint shown, nothing fetched from elsewhere,
and a query tried from the page."""

import json
import re
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def schema_operations(browser: Browser) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in the schema the running server serves."""
    response = requests.get(f"{browser.site.live_url}/api/v1/schema/?format=json", timeout=10)
    assert response.status_code == 200
    paths = response.json()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def hosts_requested(browser: Browser) -> set[str]:
    """`host:port` of each http(s) request the pages made; the scheme of any other kind."""
    hosts = set()
    for url in browser.requests:
        parts = urlsplit(url)
        hosts.add(parts.netloc if parts.scheme in ("http", "https") else parts.scheme)
    return hosts


def test_swagger_ui_shows_every_endpoint_from_local_assets(browser: Browser):
    page = browser.page
    page.goto("/api/v1/docs/")
    operations = page.locator(".opblock")
    expected = schema_operations(browser)
    expect(operations).to_have_count(len(expected))
    page.wait_for_load_state("networkidle")
    browser.screenshot("swagger-ui")

    shown = {
        (
            block.locator(".opblock-summary-method").inner_text().upper(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in operations.all()
    }
    assert shown == expected
    assert {"/api/v1/trees/", "/api/v1/stats/"} <= {path for _, path in shown}
    # The page, its scripts, styles, images and the schema: all from the site itself.
    assert hosts_requested(browser) == {urlsplit(browser.site.url).netloc}
    assert any("/static/drf_spectacular_sidecar/" in url for url in browser.requests)
    assert browser.console_errors == []  # includes Content-Security-Policy violations


def test_try_a_filtered_query_from_swagger_ui(browser: Browser):
    page = browser.page
    site = browser.site
    page.goto("/api/v1/docs/")
    trees = page.locator(".opblock").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/v1/trees/"]')
    )
    trees.locator(".opblock-summary").click()
    trees.get_by_role("button", name="Try it out").click()
    # Values in any case, so the schema gives a pattern rather than an enum: a text item.
    borough = trees.locator('tr[data-param-name="borough"]')
    borough.get_by_role("button", name="Add string item").click()
    borough.locator("input").first.fill(site.borough.lower())
    trees.locator('tr[data-param-name="page_size"] input').fill("5")
    trees.get_by_role("button", name="Execute").click()

    expect(trees.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(trees.locator(".request-url")).to_contain_text(
        re.compile(r"/api/v1/trees/\?.*borough=")
    )
    body = trees.locator(".live-responses-table .response-col_description pre").first
    expect(body).to_contain_text('"tree_id"')
    body.scroll_into_view_if_needed()
    browser.screenshot("swagger-ui-tried", full_page=False)
    results = json.loads(body.inner_text())["results"]
    assert len(results) == 5
    assert {tree["borough"] for tree in results} == {site.borough}
    assert browser.console_errors == []

"""The admin in a real browser: log in, search, filter, open a tree and its species, sync runs."""

import re
from urllib.parse import quote_plus

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from tests.browser.conftest import STAFF_USERNAME, Browser

pytestmark = pytest.mark.django_db(transaction=True)


def listed_tree_ids(page: Page) -> list[int]:
    return [int(text) for text in page.locator("#result_list th.field-tree_id").all_inner_texts()]


def column(page: Page, name: str) -> list[str]:
    return page.locator(f"#result_list td.field-{name}").all_inner_texts()


def open_tree_changelist(browser: Browser) -> Page:
    browser.log_in()
    page = browser.page
    page.get_by_role("link", name="Trees", exact=True).click()
    # Read-only: the admin offers trees to view, not to change.
    expect(page.get_by_role("heading", name="Select tree to view")).to_be_visible()
    return page


def search(page: Page, term: str) -> None:
    page.locator("#searchbar").fill(term)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"[?&]q="))
    page.wait_for_load_state()


def test_staff_log_in_and_see_the_census(browser: Browser):
    browser.log_in()
    page = browser.page
    browser.screenshot("admin-index")
    expect(page.locator("#user-tools")).to_contain_text(re.compile(STAFF_USERNAME, re.I))
    for model in ("Trees", "Species", "Sync runs"):
        expect(page.get_by_role("link", name=model, exact=True)).to_be_visible()
    assert browser.console_errors == []


def test_a_wrong_password_is_refused(browser: Browser):
    page = browser.page
    page.goto("/admin/")
    page.get_by_label("Username").fill(STAFF_USERNAME)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errornote")).to_contain_text("Please enter the correct username")
    browser.screenshot("admin-login-refused")
    expect(page).to_have_url(re.compile(r"/admin/login/"))


def test_search_a_tree_by_address(browser: Browser):
    page = open_tree_changelist(browser)
    tree = browser.site.tree
    search(page, tree.address.lower())  # any case
    browser.screenshot("search-by-address")
    assert tree.tree_id in listed_tree_ids(page)
    assert all(tree.address in address for address in column(page, "address"))
    assert browser.console_errors == []


def test_search_a_tree_by_id(browser: Browser):
    page = open_tree_changelist(browser)
    tree = browser.site.tree
    search(page, str(tree.tree_id))
    browser.screenshot("search-by-id")
    assert listed_tree_ids(page) == [tree.tree_id]
    assert column(page, "address") == [tree.address]


def test_filter_trees_by_borough_and_health(browser: Browser):
    page = open_tree_changelist(browser)
    site = browser.site
    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name=site.borough, exact=True).click()
    expect(page).to_have_url(re.compile(rf"borough__exact={re.escape(quote_plus(site.borough))}"))
    filters.get_by_role("link", name=site.health, exact=True).click()
    expect(page).to_have_url(re.compile(rf"health__exact={re.escape(quote_plus(site.health))}"))
    expect(page.locator(".paginator")).to_contain_text(f"{len(site.filtered_ids)} trees")
    browser.screenshot("filtered-by-borough-and-health")
    assert listed_tree_ids(page) == site.filtered_ids
    assert set(column(page, "borough")) == {site.borough}
    assert set(column(page, "health")) == {site.health}
    assert browser.console_errors == []


def test_open_a_tree_read_only_with_its_minimap(browser: Browser):
    page = open_tree_changelist(browser)
    tree = browser.site.tree
    search(page, str(tree.tree_id))
    page.locator("#result_list th.field-tree_id a").click()
    expect(page.get_by_role("heading", name=f"Tree {tree.tree_id}")).to_be_visible()
    expect(page.locator(".field-address .readonly")).to_have_text(tree.address)
    expect(page.locator(".field-species .readonly")).to_contain_text(tree.species.latin_name)
    expect(page.locator(".field-tree_dbh label")).to_have_text("Trunk diameter (in):")
    # Read-only, superuser or not: nothing to save or delete.
    expect(page.locator("input[name=_save]")).to_have_count(0)
    expect(page.locator(".deletelink")).to_have_count(0)
    # The minimap: drawn in the page, the tree once, its scale bar; nothing from other hosts.
    minimap = page.locator("svg.minimap")
    expect(minimap).to_be_visible()
    expect(minimap.locator("circle.tree")).to_have_count(1)
    expect(minimap.locator(".scale-bar text")).to_have_text(re.compile(r"^\d+ m$"))
    assert minimap.bounding_box()["width"] > 100
    browser.screenshot("tree")
    assert all(url.startswith(browser.site.url) for url in browser.requests)
    assert browser.console_errors == []


def test_open_a_species_read_only(browser: Browser):
    page = open_tree_changelist(browser)
    tree = browser.site.tree
    search(page, str(tree.tree_id))
    page.locator("#result_list th.field-tree_id a").click()
    page.locator(".field-species .readonly a").click()
    expect(page.get_by_role("heading", name="View species")).to_be_visible()
    expect(page.locator(".field-latin_name .readonly")).to_have_text(tree.species.latin_name)
    expect(page.locator(".field-common_name .readonly")).to_have_text(tree.species.common_name)
    expect(page.locator("input[name=_save]")).to_have_count(0)
    browser.screenshot("species")
    assert browser.console_errors == []


def test_the_last_sync_run_shows_its_figures(browser: Browser):
    browser.log_in()
    page = browser.page
    run = browser.site.run
    page.get_by_role("link", name="Sync runs", exact=True).click()
    expect(page.get_by_role("heading", name="Select sync run to view")).to_be_visible()
    browser.screenshot("sync-runs")
    newest = page.locator("#result_list tbody tr").first
    expect(newest.locator("td.field-status")).to_have_text(run.get_status_display())
    expect(newest.locator("td.field-fetched")).to_have_text(f"{run.rows_fetched:,}")
    changed = run.rows_inserted + run.rows_updated + run.rows_deleted
    expect(newest.locator("td.field-changed")).to_have_text(f"{changed:,}")

    newest.locator("th.field-started a").click()
    expect(page.get_by_role("heading", name="View sync run")).to_be_visible()
    expect(page.locator(".field-fetched .readonly")).to_have_text(f"{run.rows_fetched:,}")
    expect(page.locator(".field-inserted .readonly")).to_have_text(f"{run.rows_inserted:,}")
    expect(page.locator(".field-took .readonly")).to_have_text(re.compile(r"^\d.* s$|min|h"))
    expect(page.locator(".field-time_zone .readonly")).to_have_text(settings.TIME_ZONE)
    expect(page.locator(".field-source .readonly")).to_contain_text("/resource/uvpi-gqnh.")
    browser.screenshot("sync-run")
    assert browser.console_errors == []


def test_the_sync_run_list_fits_a_laptop_screen(browser: Browser):
    page = browser.page
    page.set_viewport_size({"width": 1366, "height": 768})
    browser.log_in()
    page.get_by_role("link", name="Sync runs", exact=True).click()
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    browser.screenshot("sync-runs-1366", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    # Nor does the table scroll inside its own box (the admin lets it, when it is too wide).
    results = page.locator("#changelist .results")
    assert results.evaluate("box => box.scrollWidth <= box.clientWidth")
    assert browser.console_errors == []

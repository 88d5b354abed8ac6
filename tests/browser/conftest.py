"""The site as its users meet it: a live server, a real headless Chromium, real clicks.

The live server (pytest-django's, which also serves static files) runs in a thread of this
process on the test database, filled by a real sync from the fake SODA server; the tests use
`transaction=True` so that thread sees the committed rows. Chromium is Debian's
(/usr/bin/chromium, installed by scripts/bootstrap), driven by Playwright, which never
downloads a browser of its own here.

Chromium reaches the live server as http://trees.test:<port>/ (a host-resolver rule maps the
name to 127.0.0.1), not as localhost, which browsers and page scripts treat specially (a
secure context without HTTPS; Swagger UI's standalone layout skips its external validator
badge there): the tests see what a visitor of a real host name sees. Chromium is told to
treat that origin as secure, as HTTPS would make it.

Every test gets a fresh browser with an empty profile. Playwright's sync API keeps an event
loop running in this thread while it is open, which Django's ORM refuses to work under, so
the browser starts only after the database work (the sync, the staff user, the facts the
tests check against) and stops before the database is flushed.

Screenshots go to test-artifacts/screenshots/: when a test fails, what was in view and the
whole page (`<test>-failed.png`, `<test>-failed-full.png`); with SCREENSHOTS=all, also one per
page the test visits.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.live import sync_census
from trees.models import SyncRun, Tree

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITE_HOST = "trees.test"
ROWS = 300
STAFF_USERNAME = "curator"
STAFF_PASSWORD = "a-long-browser-test-password-31"

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test, so a fixture's teardown knows if it failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@dataclass(frozen=True)
class Site:
    """The live site and what the tests expect to see in it, read from the database."""

    url: str  # http://trees.test:<port>, for the browser
    live_url: str  # http://localhost:<port>, for other clients
    run: SyncRun  # the sync that filled it
    tree: Tree  # a tree with an address and a species, to search for and open
    borough: str
    health: str
    filtered_ids: list[int]  # trees of `borough` in `health`, by tree_id


@pytest.fixture
def site(live_server, soda_server_factory, transactional_db, settings) -> Site:
    """The live server with a synced census and a staff user; the browser starts after it."""
    run = sync_census(soda_server_factory, rows=ROWS)
    get_user_model().objects.create_superuser(
        STAFF_USERNAME, "curator@example.org", STAFF_PASSWORD
    )
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, SITE_HOST]

    # A tree with an address and a species, whose id no other tree's address or ZIP code
    # contains (a search for digits matches those too, as house numbers).
    trees = list(Tree.objects.select_related("species").order_by("tree_id"))
    tree = next(
        tree
        for tree in trees
        if tree.species is not None
        and tree.address
        and not any(
            str(tree.tree_id) in other.address or str(tree.tree_id) == other.zipcode
            for other in trees
        )
    )
    # The most common borough and health pair that still fits on one admin page (50 rows).
    pairs = (
        Tree.objects.exclude(health="")
        .values_list("borough", "health")
        .annotate(trees=Count("tree_id"))
        .filter(trees__lt=50)
        .order_by("-trees", "borough", "health")
    )
    borough, health, _ = pairs[0]
    filtered_ids = list(
        Tree.objects.filter(borough=borough, health=health)
        .order_by("tree_id")
        .values_list("tree_id", flat=True)
    )
    port = urlsplit(live_server.url).port
    return Site(
        url=f"http://{SITE_HOST}:{port}",
        live_url=live_server.url,
        run=run,
        tree=tree,
        borough=borough,
        health=health,
        filtered_ids=filtered_ids,
    )


@dataclass
class Browser:
    """A page in a fresh Chromium, with what it requested and what it complained about."""

    site: Site
    page: Page
    context: BrowserContext
    screenshot_name: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    _shots: int = 0

    def screenshot(self, label: str, *, page: Page | None = None, full_page: bool = True) -> None:
        """One screenshot of the page (or a popup) as it is now, when SCREENSHOTS=all."""
        if os.environ.get("SCREENSHOTS") == "all":
            self._shots += 1
            path = SCREENSHOTS / f"{self.screenshot_name}-{self._shots:02d}-{label}.png"
            (page or self.page).screenshot(path=path, full_page=full_page)

    def log_in(self) -> None:
        """Log into the admin through its login form, as a member of staff would."""
        page = self.page
        page.goto("/admin/")
        page.get_by_label("Username").fill(STAFF_USERNAME)
        page.get_by_label("Password").fill(STAFF_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Site administration").wait_for()


@pytest.fixture
def chromium_extra_args() -> list[str]:
    """More Chromium switches for one module's tests (a module overrides this fixture)."""
    return []


@pytest.fixture
def browser(
    site: Site, request: pytest.FixtureRequest, tmp_path: Path, chromium_extra_args: list[str]
) -> Iterator[Browser]:
    name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::", 1)[-1]).strip("_")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",  # empty: a first visit, nothing remembered
            executable_path=CHROMIUM,
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                f"--host-resolver-rules=MAP {SITE_HOST} 127.0.0.1",
                # Treated as HTTPS would be (secure context, Cross-Origin-Opener-Policy
                # honoured), as the site is in production.
                f"--unsafely-treat-insecure-origin-as-secure={site.url}",
                *chromium_extra_args,
            ],
            base_url=site.url,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        browser = Browser(site=site, page=context.pages[0], context=context, screenshot_name=name)
        context.on("request", lambda req: browser.requests.append(req.url))
        context.on("console", lambda message: _console_error(browser, message))
        context.on("weberror", lambda error: browser.console_errors.append(str(error.error)))
        try:
            yield browser
        finally:
            reports = request.node.stash.get(REPORTS, {})
            if any(report.failed for report in reports.values()):
                # What was in view when it failed, and the whole page for context.
                for suffix, full_page in (("failed", False), ("failed-full", True)):
                    path = SCREENSHOTS / f"{name}-{suffix}.png"
                    browser.page.screenshot(path=path, full_page=full_page)
                    print(f"screenshot of the failure: {path}")
            context.close()


def _console_error(browser: Browser, message: ConsoleMessage) -> None:
    # Chromium reports each Content-Security-Policy violation, and each failed request, here.
    if message.type == "error":
        browser.console_errors.append(message.text)

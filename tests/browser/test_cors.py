"""The API read from a page on another origin, in a real Chromium: what CORS must allow."""

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.browser.conftest import Browser
from tests.security.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = b"<!doctype html><title>A map elsewhere</title><p>Trees from another site.</p>"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def other_origin() -> Iterator[str]:
    """A plain page served from a second local origin (another port, another host name)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# Run in the other origin's page: a list, then the same with its ETag (If-None-Match is not
# a safelisted header, so Chromium sends a preflight first).
FETCH_TWICE = """async (url) => {
    const first = await fetch(url);
    const body = await first.json();
    const etag = first.headers.get("ETag");
    const again = await fetch(url, {headers: {"If-None-Match": etag}});
    return {
        status: first.status,
        count: body.results.length,
        etag: etag,
        remaining: first.headers.get("RateLimit-Remaining"),
        limit: first.headers.get("RateLimit-Limit"),
        lastModified: first.headers.get("Last-Modified"),
        xCache: first.headers.get("X-Cache"),
        againStatus: again.status,
        againEtag: again.headers.get("ETag"),
    };
}"""


def test_a_page_on_another_origin_reads_the_api_and_revalidates(browser: Browser, other_origin):
    page = browser.page
    page.goto(other_origin)
    url = f"{browser.site.url}/api/v1/trees/?page_size=50"
    result = page.evaluate(FETCH_TWICE, url)
    assert result["status"] == 200
    assert result["count"] == 50
    assert result["etag"].startswith('"')
    assert int(result["limit"]) > int(result["remaining"]) >= 0
    assert result["lastModified"].endswith("GMT")
    assert result["xCache"] is None  # not exposed: only what the API means clients to read
    assert (result["againStatus"], result["againEtag"]) == (304, result["etag"])
    assert browser.console_errors == []


def test_outside_the_api_another_origin_is_refused(browser: Browser, other_origin):
    page = browser.page
    page.goto(other_origin)
    refused = page.evaluate(
        "async (url) => { try { await fetch(url); return 'read'; }"
        " catch (error) { return error.name; } }",
        f"{browser.site.url}/admin/login/",
    )
    assert refused == "TypeError"  # what a page sees when CORS refuses
    assert any("Access-Control-Allow-Origin" in error for error in browser.console_errors)

"""scripts/vendor_maplibre.py against a local HTTP server serving a tarball built here."""

import base64
import hashlib
import importlib.util
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vendor_maplibre.py"
PACKAGE = {
    "package/dist/maplibre-gl.mjs": b"export const version = 'test';\n",
    "package/dist/maplibre-gl-worker.mjs": b"self.worker = {};\n",
    "package/dist/maplibre-gl.css": b".maplibregl-map { overflow: hidden }\n",
    "package/LICENSE.txt": b"Copyright (c) test\n",
    "package/README.md": b"not extracted\n",
}


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Registry:
    """Serves one body at /maplibre-gl.tgz and counts the requests for it."""

    def __init__(self, body: bytes):
        self.body = body
        self.requests = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                registry.requests += 1
                if self.path != "/maplibre-gl.tgz":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(registry.body)))
                self.end_headers()
                self.wfile.write(registry.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/maplibre-gl.tgz"


@pytest.fixture
def registry() -> Iterator[Registry]:
    registry = Registry(tarball(PACKAGE))
    thread = threading.Thread(target=registry.server.serve_forever, daemon=True)
    thread.start()
    yield registry
    registry.server.shutdown()
    registry.server.server_close()
    thread.join(timeout=5)


def vendor(dest: Path, url: str, checksum: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, "--dest", dest, "--url", url, "--integrity", checksum],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_good_checksum_extracts_the_browser_build_css_and_licence(registry, tmp_path):
    dest = tmp_path / "static" / "vendor" / "maplibre-gl"
    result = vendor(dest, registry.url, integrity(registry.body))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in dest.iterdir()) == [
        "LICENSE.txt",
        "VERSION",
        "maplibre-gl-worker.mjs",
        "maplibre-gl.css",
        "maplibre-gl.mjs",
    ]
    assert (dest / "maplibre-gl.mjs").read_bytes() == PACKAGE["package/dist/maplibre-gl.mjs"]
    assert (dest / "maplibre-gl.css").read_bytes() == PACKAGE["package/dist/maplibre-gl.css"]
    assert (dest / "LICENSE.txt").read_bytes() == PACKAGE["package/LICENSE.txt"]
    assert (dest / "VERSION").read_text() == "6.20.0\n"
    assert list(tmp_path.glob("static/vendor/.*")) == []  # no staging folder left behind


def test_a_copy_at_the_pinned_version_is_not_downloaded_again(registry, tmp_path):
    dest = tmp_path / "maplibre-gl"
    assert vendor(dest, registry.url, integrity(registry.body)).returncode == 0
    assert registry.requests == 1
    result = vendor(dest, registry.url, integrity(registry.body))
    assert result.returncode == 0, result.stderr
    assert registry.requests == 1

    # Another version recorded (or a file missing): fetched again.
    (dest / "VERSION").write_text("6.19.0\n")
    assert vendor(dest, registry.url, integrity(registry.body)).returncode == 0
    assert registry.requests == 2
    (dest / "maplibre-gl-worker.mjs").unlink()
    assert vendor(dest, registry.url, integrity(registry.body)).returncode == 0
    assert registry.requests == 3
    assert (dest / "maplibre-gl-worker.mjs").is_file()


def test_a_bad_checksum_fails_and_writes_nothing(registry, tmp_path):
    dest = tmp_path / "vendor" / "maplibre-gl"
    result = vendor(dest, registry.url, integrity(b"some other tarball"))
    assert result.returncode == 1
    assert "integrity mismatch" in result.stderr
    assert integrity(registry.body) in result.stderr  # what was actually downloaded
    assert not (tmp_path / "vendor").exists()


def test_a_bad_checksum_leaves_an_older_copy_as_it_was(registry, tmp_path):
    dest = tmp_path / "maplibre-gl"
    dest.mkdir()
    (dest / "VERSION").write_text("6.19.0\n")
    result = vendor(dest, registry.url, integrity(b"some other tarball"))
    assert result.returncode == 1
    assert [path.name for path in tmp_path.iterdir()] == ["maplibre-gl"]
    assert [path.name for path in dest.iterdir()] == ["VERSION"]


def test_a_network_error_fails_clearly(registry, tmp_path):
    dest = tmp_path / "maplibre-gl"
    missing = registry.url.replace("maplibre-gl.tgz", "nothing-here.tgz")
    result = vendor(dest, missing, integrity(registry.body))
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
    registry.server.shutdown()
    registry.server.server_close()
    result = vendor(dest, registry.url, integrity(registry.body))
    assert result.returncode == 1
    assert "cannot download" in result.stderr
    assert not dest.exists()


def test_a_package_without_the_browser_build_is_refused(registry, tmp_path):
    registry.body = tarball({"package/LICENSE.txt": b"licence only\n"})
    dest = tmp_path / "maplibre-gl"
    result = vendor(dest, registry.url, integrity(registry.body))
    assert result.returncode == 1
    assert "no package/dist/maplibre-gl.mjs" in result.stderr
    assert not dest.exists()


def test_the_pinned_release_is_6_20_0_from_npm():
    spec = importlib.util.spec_from_file_location("vendor_maplibre", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.VERSION == "6.20.0"
    assert module.URL == "https://registry.npmjs.org/maplibre-gl/-/maplibre-gl-6.20.0.tgz"
    assert module.INTEGRITY == (
        "sha512-7manvqXeNoN0mKRzenYDopkb3VW9j7iag45RvopkOVFZ7c+La7CBWtK8eBS5bKrI6NyxqAIxPxIG1PMcotcY1w=="
    )

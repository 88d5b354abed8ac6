#!/usr/bin/env python3
"""Vendor MapLibre GL JS, pinned, from the npm registry: the map page serves it itself (no CDN).

Downloads the package's tarball, checks it against npm's published `integrity` (sha512) before
anything is written, and extracts the browser build, its stylesheet and the licence into
trees/static/vendor/maplibre-gl/ (git-ignored), with a VERSION file. A copy already there at
this version is left alone. Since 6.x the browser build is ES modules: `maplibre-gl.mjs`, which
starts its workers from `maplibre-gl-worker.mjs` (there is no `maplibre-gl.js` any more).

Standard library only: scripts/bootstrap runs it before the virtualenv is needed, and the
Dockerfile's build stage runs it with the base image's Python.

Usage: scripts/vendor_maplibre.py [--dest DIR] [--url URL --integrity sha512-...]
Exit status 0 when the files are in place, 1 when the download or its check failed.
"""

import argparse
import base64
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "6.20.0"
URL = f"https://registry.npmjs.org/maplibre-gl/-/maplibre-gl-{VERSION}.tgz"
# npm's `dist.integrity` for that tarball (`npm view maplibre-gl@6.20.0 dist.integrity`).
INTEGRITY = (
    "sha512-7manvqXeNoN0mKRzenYDopkb3VW9j7iag45RvopkOVFZ7c+La7C"
    "BWtK8eBS5bKrI6NyxqAIxPxIG1PMcotcY1w=="
)
DEST = Path(__file__).resolve().parent.parent / "trees" / "static" / "vendor" / "maplibre-gl"
# Tarball member -> file name in DEST.
FILES = {
    "package/dist/maplibre-gl.mjs": "maplibre-gl.mjs",
    "package/dist/maplibre-gl-worker.mjs": "maplibre-gl-worker.mjs",
    "package/dist/maplibre-gl.css": "maplibre-gl.css",
    "package/LICENSE.txt": "LICENSE.txt",
}
TIMEOUT = 60  # seconds without an answer before the download fails


class VendorError(Exception):
    """The package could not be fetched, or is not the one pinned."""


def is_current(dest: Path, version: str) -> bool:
    version_file = dest / "VERSION"
    return (
        version_file.is_file()
        and version_file.read_text().strip() == version
        and all((dest / name).is_file() for name in FILES.values())
    )


def download(url: str) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise VendorError(f"not an http(s) URL: {url!r}")
    headers = {"User-Agent": "nyc-trees vendor_maplibre"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) only, above)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as exc:
        raise VendorError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VendorError(f"{url}: cannot download: {reason}") from None


def check_integrity(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or not expected:
        raise VendorError(f"not an npm sha512 integrity: {integrity!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise VendorError(
            f"integrity mismatch: expected sha512-{expected}, got sha512-{actual} "
            f"({len(data)} bytes); nothing was written"
        )


def members(data: bytes) -> dict[str, bytes]:
    """The wanted files' contents, read by exact name (no path from the archive is trusted)."""
    contents = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member, name in FILES.items():
                try:
                    info = archive.getmember(member)
                except KeyError:
                    raise VendorError(f"the package has no {member}") from None
                extracted = archive.extractfile(info) if info.isfile() else None
                if extracted is None:
                    raise VendorError(f"{member} in the package is not a file")
                contents[name] = extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise VendorError(f"not a readable .tgz: {exc}") from None
    return contents


def install(contents: dict[str, bytes], dest: Path, version: str) -> None:
    """Write every file into a fresh folder beside `dest`, then swap it in whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for name, content in contents.items():
            (staging / name).write_bytes(content)
        (staging / "VERSION").write_text(f"{version}\n")
        staging.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def vendor(*, url: str, integrity: str, dest: Path, version: str) -> bool:
    """Put the package's files in `dest`; False when they were there already."""
    if is_current(dest, version):
        return False
    data = download(url)
    check_integrity(data, integrity)
    install(members(data), dest, version)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEST, help=f"default: {DEST}")
    parser.add_argument("--url", default=URL, help="the tarball (default: npm's, pinned)")
    parser.add_argument("--integrity", default=INTEGRITY, help="npm integrity of --url")
    parser.add_argument("--version", default=VERSION, help="what VERSION records")
    args = parser.parse_args(argv)
    try:
        changed = vendor(
            url=args.url, integrity=args.integrity, dest=args.dest, version=args.version
        )
    except VendorError as exc:
        print(f"vendor_maplibre: {exc}", file=sys.stderr)
        return 1
    if changed:
        print(f"vendor_maplibre: MapLibre GL JS {args.version} -> {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A client generated from the schema the live server serves, type-checked, and run against it.

What a consumer does with an OpenAPI schema: openapi-python-client generates a typed package
from `/api/v1/schema/`, their code (tests/api/client_script.py) calls it, mypy --strict
checks both, and the calls must work against the real server (gunicorn, on a synced
census): no AuthenticatedClient demanded, integer ids, GeoJSON parsed into its own model,
cursor pages followed. The script prints what it read; this test compares it with the
database.

Everything runs offline and writes only under the test's tmp dir (the generated package,
mypy's cache). The README's "Generating a client" runs the same command.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.live import sync_census
from tests.security.server import database_env, gunicorn
from trees.models import Tree

pytestmark = pytest.mark.django_db(transaction=True)  # committed: gunicorn reads the rows

SCRIPT = Path(__file__).with_name("client_script.py")
BIN = Path(sys.executable).parent
PACKAGE = "nyc_trees_client"
EXPORT = "/api/v1/trees/export.csv"


def generate(schema: Path, into: Path) -> subprocess.CompletedProcess:
    """openapi-python-client, as the README says to run it (post hooks off: no ruff needed)."""
    config = into / "openapi-python-client.yml"
    config.write_text(
        "post_hooks: []\n"
        # openapi-python-client reads no NDJSON or vector tiles: as bytes, which they are.
        "content_type_overrides:\n  application/x-ndjson: application/octet-stream\n"
        "  application/vnd.mapbox-vector-tile: application/octet-stream\n"
    )
    return subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--meta",
            "none",
            "--output-path",
            str(into / PACKAGE),
            "--config",
            str(config),
        ],
        cwd=into,
        capture_output=True,
        text=True,
        timeout=120,
    )


def mypy(into: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(into / ".mypy_cache"),
            PACKAGE,
            "client_script.py",
        ],
        cwd=into,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_script(into: Path, base_url: str) -> dict:
    result = subprocess.run(
        [sys.executable, "client_script.py", base_url],
        cwd=into,
        env={**os.environ, "PYTHONPATH": str(into)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def server(soda_server_factory):
    sync_census(soda_server_factory, rows=60)
    env = database_env(SECRET_KEY="client-" + "k" * 60, API_THROTTLE_RATE="100000/minute")
    with gunicorn(env) as running:
        yield running


def test_a_generated_client_type_checks_and_reads_the_live_server(server, tmp_path):
    schema = requests.get(f"{server.url}/api/v1/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_bytes(schema.content)
    assert EXPORT in schema.json()["paths"]

    generated = generate(tmp_path / "schema.json", tmp_path)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # Every operation generated: a warning means one was skipped or typed as Any.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    shutil.copy(SCRIPT, tmp_path / "client_script.py")

    checked = mypy(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found" in checked.stdout

    report = run_script(tmp_path, server.url)

    ids = list(Tree.objects.order_by("tree_id").values_list("tree_id", flat=True))
    assert report["pages"] == [ids[0:7], ids[7:14], ids[14:21]]

    tree = Tree.objects.select_related("species").get(tree_id=ids[0])
    assert report["detail"] == {
        "tree_id": tree.tree_id,
        "borough": tree.borough,
        "latitude": pytest.approx(tree.latitude),
        "longitude": pytest.approx(tree.longitude),
        "species": None if tree.species is None else tree.species.latin_name,
    }

    coordinates = {
        tree_id: [lon, lat]
        for tree_id, lon, lat in Tree.objects.values_list("tree_id", "longitude", "latitude")
    }
    assert [feature["id"] for feature in report["geojson"]] == ids[0:7]
    for feature in report["geojson"]:
        assert feature["coordinates"] == pytest.approx(coordinates[feature["id"]])
    assert report["geojson_next"] is True

    boroughs = Counter(Tree.objects.values_list("borough", flat=True))
    assert report["stats"] == {"total": len(ids), "by_borough": dict(boroughs)}
    assert report["groups"] == {"total": len(ids), "counts": dict(boroughs)}

    most = max(
        Counter(Tree.objects.exclude(species=None).values_list("species", flat=True)).items(),
        key=lambda item: item[1],
    )
    assert report["species"]["tree_count"] == most[1]

    assert report["export_lines"] == len(ids) + 1  # the header row, then one a tree

    assert report["tiles"]["template"] == f"{server.url}/tiles/trees/{{z}}/{{x}}/{{y}}.mvt"
    assert report["tiles"]["world_bytes"] > 0

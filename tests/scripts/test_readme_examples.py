"""Every `curl` example in README.md, run as written against a live server and the fake census.

The README promises its examples work offline against the stand-in for Socrata: the same
1,000 generated trees its journey loads (`python -m tests.fakes.soda --rows 1000`). Each
example's URL is sent with curl, with only the host and port swapped for the test server's;
it must answer 200 with a body in the format asked for, and a list that is not empty, so a
README that names a tree, a species or a column the data lacks fails here.
"""

import csv
import io
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.live import sync_census
from tests.security.server import database_env, gunicorn

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ORIGIN = "http://127.0.0.1:8000"
JOURNEY_ROWS = 1000  # as README's "A user's journey" loads
JOURNEY_SEED = 0  # the fake's default seed, which the journey's command line keeps

pytestmark = pytest.mark.django_db(transaction=True)  # gunicorn must see the synced trees


def readme_curl_commands() -> list[list[str]]:
    """The curl commands of README.md's `sh` blocks that call the local API, as argv lists."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("curl ") and README_ORIGIN + "/api/" in line:
                commands.append(shlex.split(line))
    return commands


def test_the_readme_has_curl_examples_to_check():
    commands = readme_curl_commands()
    assert len(commands) >= 10, commands
    assert all(command[0] == "curl" for command in commands)


def items_of(body: bytes, content_type: str) -> list | dict:
    """What a response lists (trees, features, groups, species, rows), or the object itself."""
    if content_type.startswith("text/csv"):
        return list(csv.DictReader(io.StringIO(body.decode())))
    if "ndjson" in content_type or "json-seq" in content_type:
        return [json.loads(line.strip("\x1e")) for line in body.decode().splitlines() if line]
    data = json.loads(body)
    if isinstance(data, dict):
        for key in ("results", "features", "groups"):
            if key in data:
                return data[key]
    return data


def test_every_readme_curl_example_answers_with_data(soda_server_factory, tmp_path):
    sync_census(soda_server_factory, rows=JOURNEY_ROWS, seed=JOURNEY_SEED)
    failures = []
    with gunicorn(database_env(SECRET_KEY="readme-" + "k" * 60)) as server:
        for command in readme_curl_commands():
            argv = [arg.replace(README_ORIGIN, server.url) for arg in command]
            out = tmp_path / "body"
            quiet = ["--silent", "--show-error", "--output", str(out)]
            result = subprocess.run(
                [*argv, *quiet, "--write-out", "%{http_code} %{content_type}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            status, _, content_type = result.stdout.partition(" ")
            shown = shlex.join(command)
            if result.returncode != 0 or status != "200":
                failures.append(f"{shown}: curl exit {result.returncode}, HTTP {status}")
                continue
            body = out.read_bytes()
            if "--compressed" not in command and body[:2] == b"\x1f\x8b":
                failures.append(f"{shown}: gzip body without --compressed")
                continue
            items = items_of(body, content_type)
            if not items:
                failures.append(f"{shown}: empty answer {body[:200]!r}")
    assert not failures, "\n".join(failures)

"""Every example in README.md that calls the API, run as written against a live server and
the fake census.

The README promises its examples work offline against the stand-in for Socrata: the same
1,000 generated trees its journey loads (`python -m tests.fakes.soda --rows 1000`). Each
`curl` example's URL is sent with curl, and each `python -c` one-liner is run, with only the
host and port swapped for the test server's. A curl example must answer 200 with a body in
the format asked for, and a list that is not empty, so a README that names a tree, a species
or a column the data lacks fails here; a one-liner must exit 0 and print something. (The R
and ogr2ogr lines are not run: neither R nor GDAL's command-line tools are installed here;
GDAL itself reads the exports in tests/api/test_export_server.py, through pyogrio.)
"""

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import sync_census
from tests.security.server import database_env, gunicorn

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ORIGIN = "http://127.0.0.1:8000"
JOURNEY_ROWS = 1000  # as README's "A user's journey" loads
JOURNEY_SEED = 0  # the fake's default seed, which the journey's command line keeps
# curl options that name where the body goes: the test decides that itself.
OUTPUT_OPTIONS = {"-o", "--output"}

pytestmark = pytest.mark.django_db(transaction=True)  # gunicorn must see the synced trees


def readme_command_lines() -> list[str]:
    """The lines of README.md's `sh` blocks that call the local API, comments cut off."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
            if README_ORIGIN + "/api/" in line:
                lines.append(line)
    return lines


def curl_commands() -> list[list[str]]:
    """The curl examples as argv lists: a pipe to another tool, a redirection and where the
    body is saved are left out (the test reads the body itself)."""
    commands = []
    for line in readme_command_lines():
        if not line.startswith("curl "):
            continue
        argv = shlex.split(re.split(r" [|>] ", line, maxsplit=1)[0])
        kept = []
        skip = False
        for arg in argv:
            if skip:
                skip = False
            elif arg in OUTPUT_OPTIONS:
                skip = True
            else:
                kept.append(arg)
        commands.append(kept)
    return commands


def python_one_liners() -> list[str]:
    """The code of each `python -c "..."` example."""
    return [
        shlex.split(line)[2] for line in readme_command_lines() if line.startswith("python -c ")
    ]


def test_the_readme_has_examples_to_check():
    assert len(curl_commands()) >= 15, curl_commands()
    assert all(command[0] == "curl" for command in curl_commands())
    assert len(python_one_liners()) >= 3, python_one_liners()


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


def check_curl(command: list[str], server_url: str, out: Path) -> str | None:
    """What is wrong with the answer to one curl example, or None."""
    argv = [arg.replace(README_ORIGIN, server_url) for arg in command]
    quiet = ["--silent", "--show-error", "--output", str(out)]
    result = subprocess.run(
        [*argv, *quiet, "--write-out", "%{http_code} %{content_type}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    status, _, content_type = result.stdout.partition(" ")
    if result.returncode != 0 or status != "200":
        return f"curl exit {result.returncode}, HTTP {status} {result.stderr.strip()}"
    body = out.read_bytes()
    if "--compressed" not in command and body[:2] == b"\x1f\x8b":
        return "gzip body without --compressed"
    if not items_of(body, content_type):
        return f"empty answer {body[:200]!r}"
    return None


def check_python(code: str, server_url: str, cwd: Path) -> str | None:
    """What is wrong with one python example, run where any file it writes is thrown away."""
    result = subprocess.run(
        [sys.executable, "-c", code.replace(README_ORIGIN, server_url)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        return f"exit {result.returncode}: {result.stderr.strip()[-500:]}"
    if not result.stdout.strip():
        return "printed nothing"
    return None


def test_every_readme_example_answers_with_data(soda_server_factory, tmp_path):
    sync_census(soda_server_factory, rows=JOURNEY_ROWS, seed=JOURNEY_SEED)
    failures = []
    env = database_env(SECRET_KEY="readme-" + "k" * 60, API_EXPORT_THROTTLE_RATE="1000/minute")
    with gunicorn(env) as server:
        for command in curl_commands():
            problem = check_curl(command, server.url, tmp_path / "body")
            if problem:
                failures.append(f"{shlex.join(command)}: {problem}")
        for code in python_one_liners():
            problem = check_python(code, server.url, tmp_path)
            if problem:
                failures.append(f"python -c {code!r}: {problem}")
    assert not failures, "\n".join(failures)

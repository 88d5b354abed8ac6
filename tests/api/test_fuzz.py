"""The API fuzzed from its own OpenAPI schema, as the running server serves it (schemathesis).

schemathesis's command line runs against the live server, as it would against production:
the examples, coverage and fuzzing phases for every operation, every response checked by
all of its checks (no 5xx; status codes, content types, headers and bodies as the schema
says; valid input accepted, invalid input rejected). Generation is deterministic (the same
cases every run) with FUZZ_EXAMPLES cases per operation and phase: a few dozen in
`make test`, as many as you like with `make fuzz` (README "Fuzzing").

The command line rather than schemathesis's pytest integration: the integration's lazy
schema (`from_fixture`, which a live server's URL needs) sets pytest's private
`Node._nodeid`, which pytest 9.2 no longer has. The command line is also what `make fuzz`
and a fuzz of any other server use, and its HAR report shows what was sent.

The live server runs in a thread of this process on the test database, filled by a real
sync, and every request goes over HTTP through the whole middleware stack, response cache
included. The throttle is raised for the test: the fuzzer sends hundreds of requests a
minute from one address, and a 429 there would say nothing about the schema.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.live import sync_census

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"

pytestmark = pytest.mark.django_db(transaction=True)


def documented_query_parameters(schema: dict) -> set[tuple[str, str]]:
    return {
        (path, parameter["name"])
        for path, item in schema["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }


def sent_query_parameters(har: dict, schema: dict) -> set[tuple[str, str]]:
    """(schema path, parameter) of every query parameter the fuzzer sent with a request."""
    templates = {path.split("{")[0]: path for path in schema["paths"]}
    sent = set()
    for entry in har["log"]["entries"]:
        url = urlsplit(entry["request"]["url"])
        # /api/v1/trees/123/ belongs to /api/v1/trees/{tree_id}/, /api/v1/trees/ to itself.
        prefix = max((p for p in templates if url.path.startswith(p)), key=len, default=None)
        if prefix is None:
            continue
        path = url.path if url.path in schema["paths"] else templates[prefix]
        sent |= {(path, name) for name, _ in parse_qsl(url.query, keep_blank_values=True)}
    return sent


# A tile's x and y run to 2^z - 1, which no schema can say of two parameters: for the tile
# operation alone, a schema-valid tile that does not exist may be the 400 it documents.
CONFIG = """
[[operations]]
include-path = "/tiles/trees/{z}/{x}/{y}.mvt"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "404", "429"]
"""


def test_api_conforms_to_its_schema(live_server, soda_server_factory, settings, tmp_path):
    sync_census(soda_server_factory, rows=300)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    settings.API_THROTTLE_RATE = "1000000/minute"
    schema_url = f"{live_server.url}/api/v1/schema/?format=json"
    har_path = tmp_path / "fuzz.har"
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            f"--config-file={tmp_path / 'schemathesis.toml'}",
            "run",
            schema_url,
            "--checks=all",
            "--phases=examples,coverage,fuzzing",
            f"--max-examples={EXAMPLES}",
            "--generation-deterministic",
            "--workers=1",
            "--request-timeout=30",
            "--report=har",
            f"--report-har-path={har_path}",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    schema = requests.get(schema_url, timeout=10).json()
    har = json.loads(har_path.read_text())
    documented = documented_query_parameters(schema)
    assert documented - sent_query_parameters(har, schema) == set()

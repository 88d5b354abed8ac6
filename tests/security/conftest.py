"""Fixtures for the security tests that run the production server as its own process."""

import os
import subprocess
import sys

import pytest

from tests.security.server import ROOT


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> str:
    """Static files collected as for production (hashed names), once per test session."""
    root = tmp_path_factory.mktemp("staticfiles")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "STATIC_ROOT": str(root)},
        check=True,
        timeout=120,
    )
    return str(root)

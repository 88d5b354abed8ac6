"""README's "A user's journey", run for real by scripts/journey in a fresh clone of HEAD."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_journey_works_from_a_fresh_clone():
    result = subprocess.run(
        [sys.executable, "scripts/journey"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("journey: all 6 commands ran")
    assert any("fetched 1000, inserted 1000" in line for line in lines)
    assert any("logged into the admin as admin" in line for line in lines)
    assert any("the API answered 2 trees" in line for line in lines)

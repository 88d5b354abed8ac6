"""scripts/docker-secrets: random secrets for the Compose stack, never overwriting any."""

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/docker-secrets", tmp_path / "scripts/docker-secrets")
    shutil.copy(ROOT / ".env.docker.example", tmp_path / ".env.docker.example")
    return tmp_path


def make_secrets(checkout: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [checkout / "scripts/docker-secrets"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_random_secrets_an_empty_token_and_the_env_file(checkout):
    make_secrets(checkout)
    secrets = checkout / "secrets"
    assert re.fullmatch(r"[A-Za-z0-9]{64}", (secrets / "django_secret_key").read_text())
    assert re.fullmatch(r"[A-Za-z0-9]{40}", (secrets / "postgres_password").read_text())
    assert (secrets / "socrata_app_token").read_text() == ""
    assert (checkout / ".env.docker").read_text() == (checkout / ".env.docker.example").read_text()


def test_each_checkout_gets_its_own_values(checkout, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    shutil.copytree(checkout, other, dirs_exist_ok=True)
    make_secrets(checkout)
    make_secrets(other)
    for name in ("django_secret_key", "postgres_password"):
        assert (checkout / "secrets" / name).read_text() != (other / "secrets" / name).read_text()


def test_secrets_folder_is_private_and_files_readable_by_the_containers_users(checkout):
    make_secrets(checkout)
    assert mode(checkout / "secrets") == 0o700
    for path in (checkout / "secrets").iterdir():
        assert mode(path) == 0o644, path


def test_never_overwrites_existing_secrets_or_env_file(checkout):
    secrets = checkout / "secrets"
    secrets.mkdir()
    (secrets / "django_secret_key").write_text("mine")
    (secrets / "socrata_app_token").write_text("my-token")
    (checkout / ".env.docker").write_text("LOG_LEVEL=DEBUG\n")

    result = make_secrets(checkout)

    assert (secrets / "django_secret_key").read_text() == "mine"
    assert (secrets / "socrata_app_token").read_text() == "my-token"
    assert (checkout / ".env.docker").read_text() == "LOG_LEVEL=DEBUG\n"
    assert (secrets / "postgres_password").is_file()
    assert "kept     secrets/django_secret_key" in result.stdout
    assert "created  secrets/postgres_password" in result.stdout
    assert not list(secrets.glob("*.tmp"))

"""docker-compose.yml and its development override: valid, and wired as issue 6 requires.

The stack is checked as Compose itself normalises it (`config --format json`, every profile,
.env.docker merged in), in a copy where `scripts/docker-secrets` has run.
"""

import re

import pytest
import yaml

from tests.docker.helpers import (
    BIN,
    DEV_OVERRIDE,
    ROOT,
    compose_config,
    compose_run,
    dockerfile_stages,
    run,
)

ONE_SHOT = {"migrate", "sync"}
BACKING = {"db", "redis"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN")
VARIANTS = {"default": (), "dev override": DEV_OVERRIDE}


@pytest.fixture(params=VARIANTS.values(), ids=VARIANTS.keys())
def stack(request, stack_dir) -> dict:
    return compose_config(stack_dir, files=request.param)


def our_services(stack: dict) -> dict:
    """The services that run this project's image (the others are Postgres and Redis)."""
    return {name: service for name, service in stack["services"].items() if "build" in service}


def documented_variables() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))


def variables_the_code_reads() -> set[str]:
    """Names read by the settings (with their NAME_FILE twins), gunicorn and the entrypoint."""
    settings = (ROOT / "config/settings.py").read_text()
    read = set(re.findall(r"""(?:env(?:\.\w+)?|secret)\(\s*"([A-Z][A-Z0-9_]*)\"""", settings))
    read |= {f"{name}_FILE" for name in read}  # FileAwareEnv: NAME_FILE for every env() read
    gunicorn = (ROOT / "config/gunicorn.py").read_text()
    read |= set(re.findall(r"""os\.environ\.get\(\s*"([A-Z][A-Z0-9_]*)\"""", gunicorn))
    entrypoint = (ROOT / "docker/entrypoint.sh").read_text()
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", entrypoint))
    return read


def test_compose_files_match_the_compose_specification_schema():
    schema = ("--builtin-schema", "vendor.compose-spec")
    result = run(BIN / "check-jsonschema", *schema, *DEV_OVERRIDE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("config", "--quiet"),
        ("--profile", "*", "config", "--quiet"),
        ("-f", DEV_OVERRIDE[0], "-f", DEV_OVERRIDE[1], "--profile", "*", "config", "--quiet"),
    ],
    ids=["default", "every profile", "dev override"],
)
def test_compose_accepts_the_stack(stack_dir, args):
    result = compose_run(stack_dir, *args)
    assert result.returncode == 0, result.stderr


def test_compose_files_use_neither_version_nor_links():
    for name in DEV_OVERRIDE:
        text = (ROOT / name).read_text()
        parsed = yaml.safe_load(text)
        assert "version" not in parsed, name
        assert not re.search(r"^\s+(external_)?links:", text, re.M), name


def test_development_override_is_never_loaded_by_default():
    for name in ["compose.override.yaml", "compose.override.yml", "docker-compose.override.yml"]:
        assert not (ROOT / name).exists(), f"{name} would be merged into every `up`"


def test_stack_has_the_four_services_and_sync_sits_under_a_profile(stack):
    assert set(stack["services"]) == {"db", "redis", "migrate", "app", "sync"}
    assert stack["services"]["sync"]["profiles"] == ["sync"]
    assert stack["services"]["app"].get("profiles") is None


def test_backing_services_are_the_official_images(stack):
    assert re.fullmatch(r"postgis/postgis:1[67]-3\.[4-9]", stack["services"]["db"]["image"])
    assert stack["services"]["redis"]["image"] == "redis:7"


def test_every_secret_a_service_uses_is_a_file_the_secrets_script_created(stack, stack_dir):
    declared = stack.get("secrets", {})
    used = {s["source"] for svc in stack["services"].values() for s in svc.get("secrets", [])}
    assert used, "the stack reads its credentials from secrets"
    assert used <= set(declared), used - set(declared)
    for name in used:
        path = declared[name]["file"]
        assert path.startswith(f"{stack_dir}/secrets/"), path
        assert (stack_dir / "secrets" / path.rsplit("/", 1)[-1]).is_file(), path


def test_every_variable_passed_to_our_image_is_read_by_the_code_and_documented(stack):
    passed = {name for svc in our_services(stack).values() for name in svc["environment"]}
    env_file = (ROOT / ".env.docker.example").read_text()
    passed |= set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", env_file, re.M))
    assert passed - variables_the_code_reads() == set()
    assert passed - documented_variables() == set()


def test_credentials_arrive_only_as_files_under_run_secrets(stack):
    for name, service in stack["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(variable):
                assert variable.endswith("_FILE"), f"{name}: {variable} carries a value"
                assert value.startswith("/run/secrets/"), f"{name}: {variable}={value}"


def test_no_url_carries_a_password(stack):
    texts = [(ROOT / name).read_text() for name in (*DEV_OVERRIDE, ".env.docker.example")]
    texts += [
        str(value)
        for svc in stack["services"].values()
        for value in (svc.get("environment") or {}).values()
    ]
    for text in texts:
        assert not re.search(r"\w+://[^/\s@:]*:[^/\s@]+@", text), text


def test_env_file_for_the_stack_holds_no_secret():
    env_file = (ROOT / ".env.docker.example").read_text()
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", env_file, re.M)
    assert names
    assert [name for name in names if SECRET_NAME.search(name)] == []


def test_long_running_services_have_healthchecks(stack):
    image_has_healthcheck = any(i == "HEALTHCHECK" for i, _ in dockerfile_stages()[-1])
    for name, service in stack["services"].items():
        healthcheck = service.get("healthcheck", {})
        if name in ONE_SHOT:
            assert service["restart"] == "no", f"one-shot {name} must not be restarted"
            continue
        assert not healthcheck.get("disable"), name
        assert healthcheck.get("test") or ("build" in service and image_has_healthcheck), name
        assert service["restart"] == "unless-stopped", name


def test_app_and_sync_wait_for_healthy_backing_services_and_completed_migrations(stack):
    for name in ("app", "sync"):
        depends_on = stack["services"][name]["depends_on"]
        assert {dep: spec["condition"] for dep, spec in depends_on.items()} == {
            "db": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name
    assert stack["services"]["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_postgres_and_redis_are_not_published(stack):
    for name in BACKING:
        assert not stack["services"][name].get("ports"), f"{name} is published"


def test_only_the_app_port_is_published(stack):
    published = {name: svc["ports"] for name, svc in stack["services"].items() if svc.get("ports")}
    assert list(published) == ["app"]
    assert [port["target"] for port in published["app"]] == [8000]


def test_postgres_keeps_its_data_in_a_named_volume_and_reads_its_password_from_a_secret(stack):
    db = stack["services"]["db"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert [(v["type"], v["source"], v["target"]) for v in db["volumes"]] == [
        ("volume", "pgdata", "/var/lib/postgresql/data")
    ]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_our_containers_run_unprivileged_with_a_read_only_filesystem(stack):
    for name, service in our_services(stack).items():
        assert service.get("user") in (None, ""), f"{name} must keep the image's non-root user"
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_default_stack_serves_with_gunicorn_and_dev_override_with_runserver(stack_dir):
    default = compose_config(stack_dir)["services"]["app"]
    dev = compose_config(stack_dir, files=DEV_OVERRIDE)["services"]["app"]
    assert default.get("command") is None, "the image's CMD (gunicorn) serves by default"
    assert "DEBUG" not in default["environment"]
    assert dev["command"] == ["python", "manage.py", "runserver", "0.0.0.0:8000"]
    assert dev["environment"]["DEBUG"] == "true"
    assert [v["target"] for v in dev["volumes"]] == ["/app"]

"""The Dockerfile: lint-clean, and the properties the image promises (issue 6)."""

import re
import tomllib

from tests.docker.helpers import BIN, ROOT, dockerfile_stages, run

SECRET_NAME = re.compile(r"\b[A-Z0-9_]*(SECRET|PASSWORD|TOKEN)[A-Z0-9_]*\b")


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def test_hadolint_finds_nothing_at_warning_level():
    result = run(BIN / "hadolint", "--failure-threshold", "warning", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hadolint_ignore_gives_a_reason():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^#\s*hadolint ignore=.*$", text, re.M):
        # `# hadolint ignore=DL3008 -- reason` or a comment line just before it.
        assert re.search(r"ignore=[A-Z0-9,]+\s+\S", line), f"unexplained: {line}"
    assert not (ROOT / ".hadolint.yaml").exists(), "keep ignores next to the line they excuse"


def test_base_image_is_an_argument_defaulting_to_python_313_slim():
    preamble, *stages = dockerfile_stages()
    assert preamble == [("ARG", "PYTHON_IMAGE=python:3.13-slim")]
    froms = [stage[0] for stage in stages]
    assert froms == [("FROM", "${PYTHON_IMAGE} AS build"), ("FROM", "${PYTHON_IMAGE} AS runtime")]


def test_requirements_are_installed_in_a_build_stage_before_any_code_is_copied():
    _, build, runtime = dockerfile_stages()
    copies = [args for instruction, args in build if instruction == "COPY"]
    assert copies == [
        "scripts/vendor_maplibre.py /tmp/vendor_maplibre.py",
        "requirements.txt /tmp/requirements.txt",
    ]
    assert any(i == "RUN" and "--requirement /tmp/requirements.txt" in a for i, a in build)
    # The runtime stage takes the finished virtualenv, not the build tools or caches.
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime


def test_maplibre_is_vendored_in_the_build_stage_and_collected_in_the_runtime_stage():
    _, build, runtime = dockerfile_stages()
    assert ("RUN", "python3 /tmp/vendor_maplibre.py --dest /opt/maplibre-gl") in build
    vendored = ("COPY", "--from=build /opt/maplibre-gl ./trees/static/vendor/maplibre-gl")
    assert vendored in runtime
    assert runtime.index(vendored) > runtime.index(("COPY", "trees ./trees"))
    collect = next(i for i, (op, args) in enumerate(runtime) if "collectstatic" in args)
    assert runtime.index(vendored) < collect


def test_final_stage_runs_as_a_non_root_user():
    users = [args for instruction, args in final_stage() if instruction == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_final_stage_does_not_write_bytecode_and_does_not_buffer_output():
    env = " ".join(args for instruction, args in final_stage() if instruction == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_static_files_are_collected_at_build_time():
    runs = [args for instruction, args in final_stage() if instruction == "RUN"]
    assert any("manage.py collectstatic --noinput" in args for args in runs)


def test_final_stage_serves_gunicorn_on_port_8000_with_its_config_and_a_healthcheck():
    instructions = dict(final_stage())
    assert instructions["EXPOSE"] == "8000"
    assert "/healthz" in instructions["HEALTHCHECK"]
    assert instructions["CMD"] == (
        '["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--config", "config/gunicorn.py"]'
    )
    assert instructions["ENTRYPOINT"] == '["/app/docker/entrypoint.sh"]'


def test_image_carries_oci_labels_with_the_project_version():
    labels = " ".join(args for instruction, args in final_stage() if instruction == "LABEL")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert 'org.opencontainers.image.title="nyc-trees"' in labels
    assert "org.opencontainers.image.description=" in labels
    assert f'org.opencontainers.image.version="{version}"' in labels


def test_no_secret_is_set_at_build_time():
    """No ENV, ARG or RUN gives a secret-looking variable a value: it would stay in a layer."""
    for stage in dockerfile_stages():
        for instruction, args in stage:
            for match in re.finditer(r"\b([A-Z0-9_]+)=(\S*)", args):
                name, value = match.groups()
                if SECRET_NAME.fullmatch(name) and not name.endswith("_FILE"):
                    assert not value, f"{instruction} {args}"


def glob_to_regex(pattern: str) -> str:
    """Docker's .dockerignore globs: `**/` is any folders (or none), `*` and `?` stay in one."""
    tokens = re.findall(r"\*\*/|\*\*|\*|\?|\[[^]]*\]|.", pattern)
    wildcards = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(
        wildcards.get(token, token if token.startswith("[") else re.escape(token))
        for token in tokens
    )


def dockerignore_excludes(path: str) -> bool:
    """Whether the build context leaves `path` out: the last matching pattern wins, and a
    pattern that matches a folder covers everything in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        regex = glob_to_regex(line.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not line.startswith("!")
    return excluded


def test_build_context_leaves_out_secrets_local_config_virtualenvs_and_caches():
    for path in [
        ".git/config",
        ".env",
        ".env.docker",
        "secrets/postgres_password",
        ".venv/bin/python",
        "trees/__pycache__/models.cpython-313.pyc",
        "trees/models.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        "staticfiles/staticfiles.json",
        "tests/conftest.py",
        "docker/standins/postgres/Containerfile",
        "trees/static/vendor/maplibre-gl/maplibre-gl.mjs",  # the build vendors its own
        "scripts/bootstrap",
    ]:
        assert dockerignore_excludes(path), path


def test_build_context_keeps_what_the_image_copies():
    copied = ["manage.py", "requirements.txt", "config/settings.py", "trees/models.py"]
    for path in [
        *copied,
        "docker/entrypoint.sh",
        "trees/migrations/0001_initial.py",
        "trees/static/trees/map.js",
        "scripts/vendor_maplibre.py",
    ]:
        assert not dockerignore_excludes(path), path

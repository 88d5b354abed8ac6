"""Settings come from the environment; these load them in a fresh interpreter each time."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"

PROBE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "DB": [db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]],
    "CACHE_BACKEND": settings.CACHES["default"]["BACKEND"],
    "REDIS_URL": settings.CACHES["default"]["LOCATION"],
    "SOCRATA_URL": settings.SOCRATA_URL,
    "SOCRATA_DATASET": settings.SOCRATA_DATASET,
    "SOCRATA_APP_TOKEN": settings.SOCRATA_APP_TOKEN,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
}))
"""


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without any project variable, plus `overrides`."""
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in documented and not key.endswith("_FILE")
    }
    env.update(ENV_FILE="/nonexistent/.env", DJANGO_SETTINGS_MODULE="config.settings")
    env.update(overrides)
    return env


def load_settings(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + PROBE],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(**env: str) -> dict:
    result = load_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_safe_and_local():
    loaded = settings_with(SECRET_KEY=GOOD_KEY)
    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert loaded["DB"] == ["nyc_trees", "postgres", "", "127.0.0.1", 5432]
    assert loaded["CACHE_BACKEND"] == "django_redis.cache.RedisCache"
    assert loaded["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert loaded["SOCRATA_URL"] == "https://data.cityofnewyork.us"
    assert loaded["SOCRATA_DATASET"] == "uvpi-gqnh"
    assert loaded["SOCRATA_APP_TOKEN"] is None
    assert loaded["SESSION_COOKIE_SECURE"] is False


def test_missing_secret_key_stops_startup_when_debug_is_off():
    result = load_settings()
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_on_runs_without_a_secret_key():
    assert settings_with(DEBUG="true")["DEBUG"] is True


def test_environment_variables_are_read():
    loaded = settings_with(
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="trees.example.org,api.example.org",
        DATABASE_URL="postgres://app@db.internal:5433/trees",
        REDIS_URL="redis://cache.internal:6380/2",
        SOCRATA_URL="http://soda.local:8080/",
        SOCRATA_DATASET="abcd-1234",
        SOCRATA_APP_TOKEN="token-from-env",
    )
    assert loaded["ALLOWED_HOSTS"] == ["trees.example.org", "api.example.org"]
    assert loaded["DB"] == ["trees", "app", "", "db.internal", 5433]
    assert loaded["REDIS_URL"] == "redis://cache.internal:6380/2"
    assert loaded["SOCRATA_URL"] == "http://soda.local:8080"
    assert loaded["SOCRATA_DATASET"] == "abcd-1234"
    assert loaded["SOCRATA_APP_TOKEN"] == "token-from-env"


def test_secrets_are_read_from_files_and_stripped(tmp_path):
    (tmp_path / "key").write_text(GOOD_KEY + "\n")
    (tmp_path / "db").write_text("s3cret-db-password\n")
    (tmp_path / "token").write_text("  app-token-from-file \n")
    loaded = settings_with(
        SECRET_KEY_FILE=str(tmp_path / "key"),
        DATABASE_PASSWORD_FILE=str(tmp_path / "db"),
        SOCRATA_APP_TOKEN_FILE=str(tmp_path / "token"),
    )
    assert loaded["SECRET_KEY"] == GOOD_KEY
    assert loaded["DB"][2] == "s3cret-db-password"
    assert loaded["SOCRATA_APP_TOKEN"] == "app-token-from-file"


def test_a_file_wins_over_the_plain_variable(tmp_path):
    (tmp_path / "token").write_text("from-file")
    loaded = settings_with(
        SECRET_KEY=GOOD_KEY,
        SOCRATA_APP_TOKEN="from-env",
        SOCRATA_APP_TOKEN_FILE=str(tmp_path / "token"),
    )
    assert loaded["SOCRATA_APP_TOKEN"] == "from-file"


@pytest.mark.parametrize(
    "variable", ["SECRET_KEY_FILE", "DATABASE_PASSWORD_FILE", "SOCRATA_APP_TOKEN_FILE"]
)
def test_missing_secret_file_names_the_variable_and_path(variable, tmp_path):
    missing = tmp_path / "nope" / "secret"
    result = load_settings(SECRET_KEY=GOOD_KEY, **{variable: str(missing)})
    assert result.returncode != 0
    assert variable in result.stderr
    assert str(missing) in result.stderr
    assert "No such file or directory" in result.stderr


def test_unreadable_secret_file_does_not_print_its_contents(tmp_path):
    secret_dir = tmp_path / "is-a-directory"
    secret_dir.mkdir()
    result = load_settings(SECRET_KEY_FILE=str(secret_dir))
    assert result.returncode != 0
    assert "SECRET_KEY_FILE" in result.stderr
    assert "Is a directory" in result.stderr


def test_manage_py_reports_a_configuration_error_in_one_line(tmp_path):
    (tmp_path / "token").write_text("do-not-print-me")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean_env(
            SOCRATA_APP_TOKEN_FILE=str(tmp_path / "token"),
            SECRET_KEY_FILE=str(tmp_path / "missing-key"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Configuration error: SECRET_KEY_FILE='{tmp_path / 'missing-key'}' cannot be read: "
        "No such file or directory"
    ]
    assert "do-not-print-me" not in result.stdout + result.stderr


def test_empty_secret_file_is_an_error(tmp_path):
    (tmp_path / "key").write_text("\n")
    result = load_settings(SECRET_KEY_FILE=str(tmp_path / "key"))
    assert result.returncode != 0
    assert "SECRET_KEY is set but empty" in result.stderr


def test_empty_app_token_file_means_no_token(tmp_path):
    (tmp_path / "token").write_text("\n")
    loaded = settings_with(SECRET_KEY=GOOD_KEY, SOCRATA_APP_TOKEN_FILE=str(tmp_path / "token"))
    assert loaded["SOCRATA_APP_TOKEN"] is None


def test_https_only_switches_on_secure_cookies_and_hsts():
    loaded = settings_with(SECRET_KEY=GOOD_KEY, HTTPS_ONLY="true")
    assert loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["SECURE_HSTS_SECONDS"] == 31_536_000


def test_check_deploy_is_clean_with_the_production_variables():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=clean_env(
            SECRET_KEY="x7#Qp2!vLr9@Zk4$Wm8^Tn3&Hb6*Jc1(Gf5)Ds0-Ya_Ue+Io=Ph",
            HTTPS_ONLY="true",
            ALLOWED_HOSTS="trees.example.org",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_them():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(SECRET_KEY="x7#Qp2!vLr9@Zk4$Wm8^Tn3&Hb6*Jc1(Gf5)Ds0-Ya_Ue+Io=Ph"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr  # HSTS not set


def test_api_settings_are_read_from_the_environment():
    probe = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        " s.API_THROTTLE_RATE, s.API_TRUSTED_PROXIES,"
        " s.API_PAGE_SIZE, s.API_MAX_PAGE_SIZE, s.API_MAX_RADIUS, s.API_CACHE_MAX_AGE]))"
    )
    env = {
        "SECRET_KEY": GOOD_KEY,
        "API_THROTTLE_RATE": "10/second",
        "API_TRUSTED_PROXIES": "1",
        "API_PAGE_SIZE": "20",
        "API_MAX_PAGE_SIZE": "200",
        "API_MAX_RADIUS": "1000",
        "API_CACHE_MAX_AGE": "30",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + probe],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["10/second", 1, 20, 200, 1000, 30]


def test_default_page_size_above_the_maximum_stops_startup():
    result = load_settings(SECRET_KEY=GOOD_KEY, API_PAGE_SIZE="500", API_MAX_PAGE_SIZE="100")
    assert result.returncode != 0
    assert "API_PAGE_SIZE" in result.stderr


def test_login_lockout_settings_are_read_from_the_environment():
    probe = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        " s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds(), s.AXES_COOLOFF_MESSAGE]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + probe],
        cwd=ROOT,
        env=clean_env(SECRET_KEY=GOOD_KEY, LOGIN_FAILURE_LIMIT="3", LOGIN_COOLOFF_MINUTES="30"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    limit, seconds, message = json.loads(result.stdout)
    assert (limit, seconds) == (3, 1800)
    assert message.endswith("Try again in 30 minutes.")


def test_a_zero_login_cool_off_stops_startup():
    result = load_settings(SECRET_KEY=GOOD_KEY, LOGIN_COOLOFF_MINUTES="0")
    assert result.returncode != 0
    assert "LOGIN_COOLOFF_MINUTES" in result.stderr


def test_log_lines_carry_no_url_credentials():
    import logging

    from config.logging import UTCFormatter

    try:
        raise ValueError("GET https://me:pw-1@x.us/r.csv?$$app_token=tok-2")
    except ValueError:
        request = '"GET /r.csv?%24%24app_token=tok-3 HTTP/1.1" 200'
        record = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, "%s", (request,), None)
        record.exc_info = sys.exc_info()
    line = UTCFormatter("%(message)s").format(record)
    assert "app_token=[redacted]" in line
    for secret in ("pw-1", "tok-2", "tok-3"):
        assert secret not in line


@pytest.mark.parametrize(
    ("origins", "expected"),
    [
        (None, [True, []]),  # the default: any origin
        ("*", [True, []]),
        (
            "https://a.example,https://b.example",
            [False, ["https://a.example", "https://b.example"]],
        ),
        ("", [False, []]),  # none
    ],
)
def test_cors_origins_and_the_export_rate_are_read_from_the_environment(origins, expected):
    probe = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        " s.CORS_ALLOW_ALL_ORIGINS, s.CORS_ALLOWED_ORIGINS, s.API_EXPORT_THROTTLE_RATE]))"
    )
    env = {"SECRET_KEY": GOOD_KEY, "API_EXPORT_THROTTLE_RATE": "4/hour"}
    if origins is not None:
        env["CORS_ALLOWED_ORIGINS"] = origins
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + probe],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [*expected, "4/hour"]


def csp_sources(**env: str) -> dict:
    probe = (
        "import json; from django.conf import settings as s; print(json.dumps({name: "
        "[str(source) for source in s.SECURE_CSP[name]] for name in ('img-src', 'connect-src')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + probe],
        cwd=ROOT,
        env=clean_env(SECRET_KEY=GOOD_KEY, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_a_basemap_the_policy_allows_no_other_host():
    assert csp_sources() == {"img-src": ["'self'", "data:"], "connect-src": ["'self'"]}


def test_a_basemap_host_and_only_it_is_allowed_for_images_and_fetches():
    sources = csp_sources(
        MAP_BASEMAP_URL="https://tiles.example.org:8443/osm/{z}/{x}/{y}.png?key=abc",
        MAP_BASEMAP_ATTRIBUTION="© Example",
    )
    assert sources == {
        "img-src": ["'self'", "data:", "https://tiles.example.org:8443"],
        "connect-src": ["'self'", "https://tiles.example.org:8443"],
    }


@pytest.mark.parametrize(
    "url",
    [
        "tile.example.org/{z}/{x}/{y}.png",  # no scheme
        "https://{s}.tile.example.org/{z}/{x}/{y}.png",  # no fixed host
        "ftp://tile.example.org/{z}/{x}/{y}.png",
        "https://tile.example.org/{z}/{x}.png",  # no {y}
    ],
)
def test_a_basemap_url_that_is_no_xyz_template_stops_startup(url):
    result = load_settings(SECRET_KEY=GOOD_KEY, MAP_BASEMAP_URL=url)
    assert result.returncode != 0
    assert "MAP_BASEMAP_URL" in result.stderr

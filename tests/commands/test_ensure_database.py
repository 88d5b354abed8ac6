from tests.commands.process import manage


def test_ensure_database_creates_a_missing_database_once(scratch_database_url):
    name, url = scratch_database_url
    first = manage("ensure_database", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert f"Created database '{name}'" in first.stdout
    second = manage("ensure_database", DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""


def test_ensure_database_reports_an_unreachable_server():
    result = manage(
        "ensure_database", DATABASE_URL="postgres://postgres@127.0.0.1:1/nyc_trees_unreachable"
    )
    assert result.returncode == 1
    assert "Cannot create database 'nyc_trees_unreachable' on 127.0.0.1" in result.stderr


def test_postgis_status_says_available_on_a_server_with_postgis(scratch_database_url):
    # scripts/bootstrap installs PostGIS here before the tests run; it reads this answer.
    _, url = scratch_database_url
    assert manage("ensure_database", DATABASE_URL=url).returncode == 0
    result = manage("ensure_database", "--postgis-status", DATABASE_URL=url)
    assert (result.returncode, result.stdout) == (0, "available\n"), result.stderr


def test_postgis_status_reports_an_unreachable_server():
    result = manage(
        "ensure_database",
        "--postgis-status",
        DATABASE_URL="postgres://postgres@127.0.0.1:1/nyc_trees_unreachable",
    )
    assert result.returncode == 1
    assert "Cannot ask the database server about PostGIS" in result.stderr

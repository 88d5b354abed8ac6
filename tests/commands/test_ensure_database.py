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

import psycopg
import pytest
from django.db import connection, transaction

from trees import cache as data_cache
from trees.models import DataVersion


@pytest.fixture
def version_row(db):
    row, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
    return row


def test_version_is_read_from_postgres(version_row):
    DataVersion.objects.filter(pk=version_row.pk).update(version=41)
    version = data_cache.data_version()
    assert version.number == 41
    assert version.changed_at == version_row.changed_at.replace(microsecond=0)


def test_version_row_deleted_by_hand_is_created_again(version_row):
    DataVersion.objects.all().delete()
    assert data_cache.data_version().number > 0
    assert DataVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_version_is_read_again_after_postgres_drops_the_connection():
    before = data_cache.data_version()
    # What a Postgres restart does to the connection a worker keeps between requests.
    with psycopg.connect(**_connection_parameters(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    assert data_cache.data_version() == before


def _connection_parameters() -> dict:
    settings = connection.settings_dict
    return {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
    }


def test_a_read_around_other_work_gives_the_current_version(version_row):
    data_cache.data_version()  # prepares the statement: the read then overlaps the block
    DataVersion.objects.filter(pk=version_row.pk).update(version=57)
    with data_cache.DataVersionRead() as read:
        pass
    assert read.version == data_cache.data_version()
    assert read.version.number == 57


@pytest.mark.django_db(transaction=True)
def test_a_read_on_a_new_connection_gives_the_current_version():
    version_row, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
    connection.close()  # nothing prepared on the next connection yet
    with data_cache.DataVersionRead() as read:
        pass
    assert read.version.number == version_row.version


def test_an_error_inside_a_read_leaves_the_connection_usable(version_row):
    data_cache.data_version()
    with pytest.raises(ZeroDivisionError), data_cache.DataVersionRead():
        1 / 0  # noqa: B018 (the block fails while the question is in flight)
    assert DataVersion.objects.get(pk=version_row.pk).version == version_row.version


@pytest.mark.django_db(transaction=True)
def test_a_read_on_a_connection_postgres_dropped_asks_again():
    before = data_cache.data_version()
    with psycopg.connect(**_connection_parameters(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    with data_cache.DataVersionRead() as read:
        pass
    assert read.version == before


@pytest.mark.django_db(transaction=True)
def test_bump_is_seen_exactly_at_commit():
    before = data_cache.data_version().number
    with psycopg.connect(**_connection_parameters(), autocommit=True) as elsewhere:
        read = "SELECT version FROM trees_dataversion"
        with transaction.atomic():
            data_cache.bump_data_version()
            # Other processes still see the old rows, so they see the old number too.
            assert elsewhere.execute(read).fetchone()[0] == before
        after = elsewhere.execute(read).fetchone()[0]
    assert after > before
    assert data_cache.data_version().number == after


@pytest.mark.django_db(transaction=True)
def test_rolled_back_bump_changes_nothing():
    before = data_cache.data_version().number

    def failing_sync():
        with transaction.atomic():
            data_cache.bump_data_version()
            raise RuntimeError("the sync failed")

    with pytest.raises(RuntimeError):
        failing_sync()
    assert data_cache.data_version().number == before
    assert DataVersion.objects.get().version == before


def test_response_key_carries_the_version_and_ignores_parameter_order():
    common = {"url": "http://x/api/v1/trees/", "path": "/api/v1/trees/", "fmt": "json"}
    key = data_cache.response_key(version=7, query=[("a", 1), ("b", ("x", "y"))], **common)
    assert key.startswith("api:v7:/api/v1/trees/:")
    assert key == data_cache.response_key(version=7, query=[("b", ("x", "y")), ("a", 1)], **common)
    assert key != data_cache.response_key(version=8, query=[("a", 1), ("b", ("x", "y"))], **common)


@pytest.mark.parametrize(
    "change",
    [
        {"query": [("a", 1), ("b", 3)]},
        {"query": [("a", "1"), ("b", 2)]},  # the text "1" is not the number 1
        {"query": [("a", (1, 2))]},
        {"fmt": "geojson"},
        {"url": "https://x/api/v1/trees/"},
        {"url": "http://y/api/v1/trees/"},
    ],
)
def test_response_key_differs_for_a_different_request(change):
    request = {
        "version": 7,
        "url": "http://x/api/v1/trees/",
        "path": "/api/v1/trees/",
        "query": [("a", 1), ("b", 2)],
        "fmt": "json",
    }
    assert data_cache.response_key(**request) != data_cache.response_key(**{**request, **change})


def test_response_key_length_is_bounded():
    key = data_cache.response_key(
        version=1, url="http://x/", path="/", query=[("species", ("x" * 10_000,))], fmt="json"
    )
    assert len(key) < 100


@pytest.mark.django_db(transaction=True)
def test_version_is_read_even_where_prepared_statements_are_lost(monkeypatch):
    # As behind a pooler in transaction mode: the statement prepared on "this" connection is
    # gone when it is next used. The read must still answer, and stop preparing.
    monkeypatch.setattr(data_cache._reader, "prepare", True)  # and True again afterwards
    version_row, _ = DataVersion.objects.get_or_create(pk=DataVersion.SINGLETON_PK)
    first = data_cache.data_version()
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE trees_data_version")
    DataVersion.objects.filter(pk=version_row.pk).update(version=first.number + 5)
    assert data_cache.data_version().number == first.number + 5
    assert data_cache._reader.prepare is False
    assert data_cache.data_version().number == first.number + 5

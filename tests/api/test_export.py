"""The bulk exports (trees/export.csv, .geojson, .ndjson) through Django's test client.

What only the production server shows (a slow client past the worker timeout, gzip on the
wire, pandas and GDAL reading a URL) is in test_export_server.py.
"""

import csv
import datetime
import gzip
import io
import json

import pytest
from django.db import connection, transaction
from psycopg.errors import QueryCanceled

from tests.api.conftest import assert_bad_parameter
from tests.security.server import ROOT
from trees import export
from trees.api.exports import TreeCSVExportView, TreeGeoJSONExportView, TreeNDJSONExportView
from trees.models import Tree

CSV = "/api/v1/trees/export.csv"
GEOJSON = "/api/v1/trees/export.geojson"
NDJSON = "/api/v1/trees/export.ndjson"
EXPORTS = [CSV, GEOJSON, NDJSON]

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response).decode())))


def features(response) -> list[dict]:
    text = body(response).decode()
    if response["Content-Type"] == "application/x-ndjson":
        return [json.loads(line) for line in text.splitlines()]
    collection = json.loads(text)
    assert collection["type"] == "FeatureCollection"
    return collection["features"]


def stored(tree: Tree) -> dict:
    """A tree's export columns, as Python values."""
    values = {}
    for name in export.EXPORT_COLUMNS:
        if name == "species_latin_name":
            values[name] = tree.species.latin_name if tree.species else None
        elif name == "species_common_name":
            values[name] = tree.species.common_name if tree.species else None
        else:
            values[name] = getattr(tree, name)
    return values


def as_csv(value) -> str:
    """A value as the CSV writes it (pandas and the csv module read NULL and '' alike)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(as_json(value))


def as_json(value):
    if isinstance(value, datetime.datetime):  # UTC, always with microseconds
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat() if isinstance(value, datetime.date) else value


def generate_trees(rows: int) -> None:
    """`rows` census-like trees from the benchmark's generator (species ids 1-132)."""
    sql = (ROOT / "benchmarks" / "census_rows.sql").read_text().replace("%(rows)s", str(rows))
    with connection.cursor() as cursor:
        cursor.execute(sql)


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_header_is_every_stored_column_in_model_order_with_the_species_names(
    api_client, census
):
    header = body(api_client.get(CSV)).decode().splitlines()[0]
    assert header.split(",") == list(export.EXPORT_COLUMNS)
    assert export.EXPORT_COLUMNS[:3] == ("tree_id", "block_id", "surveyed_on")
    assert {"species_id", "species_latin_name", "species_common_name"} <= set(
        export.EXPORT_COLUMNS
    )
    expected = {
        field.attname for field in Tree._meta.concrete_fields
    } | {"species_latin_name", "species_common_name"}  # fmt: skip
    assert set(export.EXPORT_COLUMNS) == expected


def test_csv_rows_equal_the_stored_trees(api_client, census):
    rows = csv_rows(api_client.get(CSV))
    trees = Tree.objects.select_related("species").order_by("tree_id")
    assert rows == [{k: as_csv(v) for k, v in stored(tree).items()} for tree in trees]


def test_csv_takes_the_tree_filters(api_client, census):
    rows = csv_rows(api_client.get(f"{CSV}?borough=Bronx&borough=Queens&dbh_min=5"))
    assert [row["tree_id"] for row in rows] == ["104", "106"]


def test_csv_with_near_has_the_trees_within_the_radius(api_client, census):
    rows = csv_rows(api_client.get(f"{CSV}?near=40.7,-73.9&radius=150"))
    assert [row["tree_id"] for row in rows] == ["101", "102"]


def test_fields_choose_the_csv_columns_in_the_documented_order(api_client, census):
    rows = csv_rows(api_client.get(f"{CSV}?fields=borough,tree_id,species_common_name&nta=QN17"))
    assert rows == [{"tree_id": "101", "species_common_name": "red maple", "borough": "Queens"}]
    header = body(api_client.get(f"{CSV}?fields=borough,tree_id")).decode().splitlines()[0]
    assert header == "tree_id,borough"


def test_csv_empty_result_is_the_header_alone(api_client, census):
    text = body(api_client.get(f"{CSV}?zipcode=99999&fields=tree_id,zipcode")).decode()
    assert text == "tree_id,zipcode\n"


# --- GeoJSON and NDJSON -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [GEOJSON, NDJSON])
def test_features_match_the_stored_trees(api_client, census, url):
    found = features(api_client.get(url))
    trees = Tree.objects.select_related("species").order_by("tree_id")
    expected = [
        {
            "type": "Feature",
            "id": tree.tree_id,
            "geometry": {"type": "Point", "coordinates": [tree.longitude, tree.latitude]},
            "properties": {
                name: as_json(value)
                for name, value in stored(tree).items()
                if name not in ("latitude", "longitude")
            },
        }
        for tree in trees
    ]
    assert found == expected


@pytest.mark.parametrize("url", [GEOJSON, NDJSON])
def test_fields_select_the_properties_and_keep_id_and_geometry(api_client, census, url):
    found = features(api_client.get(f"{url}?fields=health,latitude&species=pin oak"))
    assert found == [
        {
            "type": "Feature",
            "id": 102,
            "geometry": {"type": "Point", "coordinates": [-73.9, census["oak_brooklyn"].latitude]},
            "properties": {"health": "Fair"},
        }
    ]


def test_ndjson_is_one_feature_a_line(api_client, census):
    text = body(api_client.get(f"{NDJSON}?borough=Bronx")).decode()
    lines = text.split("\n")
    assert lines[-1] == ""  # each line ends with a newline, the last too
    assert [json.loads(line)["id"] for line in lines[:-1]] == [104, 106]


def test_geojson_of_no_tree_is_an_empty_collection(api_client, census):
    collection = json.loads(body(api_client.get(f"{GEOJSON}?zipcode=99999")))
    assert collection == {"type": "FeatureCollection", "features": []}


def test_text_with_quotes_and_backslashes_survives_every_format(api_client, census):
    Tree.objects.filter(tree_id=101).update(address='1 "Q" ST \\ N, ROW\tA')
    (row,) = csv_rows(api_client.get(f"{CSV}?nta=QN17"))
    assert row["address"] == '1 "Q" ST \\ N, ROW\tA'
    for url in (GEOJSON, NDJSON):
        (feature,) = features(api_client.get(f"{url}?nta=QN17"))
        assert feature["properties"]["address"] == '1 "Q" ST \\ N, ROW\tA'


# --- Parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", EXPORTS)
def test_an_unknown_parameter_is_a_400(api_client, census, url):
    body = assert_bad_parameter(api_client.get(f"{url}?borogh=Queens"), "borogh")
    assert "borough" in body["errors"]["borogh"][0]


@pytest.mark.parametrize("url", EXPORTS)
def test_a_bad_filter_value_is_a_400(api_client, census, url):
    assert_bad_parameter(api_client.get(f"{url}?dbh_min=big"), "dbh_min")


@pytest.mark.parametrize("url", EXPORTS)
def test_a_repeated_single_valued_parameter_is_a_400(api_client, census, url):
    assert_bad_parameter(api_client.get(f"{url}?dbh_min=3&dbh_min=30"), "dbh_min")


@pytest.mark.parametrize("url", EXPORTS)
def test_an_unknown_field_is_a_400_listing_the_valid_ones(api_client, census, url):
    body = assert_bad_parameter(api_client.get(f"{url}?fields=tree_id,height"), "fields")
    message = body["errors"]["fields"][0]
    assert "'height'" in message
    assert ", ".join(export.EXPORT_COLUMNS) in message


def test_fields_is_a_400_on_the_other_endpoints(api_client, census):
    for url in ("/api/v1/stats/", "/api/v1/species/", "/api/v1/groups/?by=borough"):
        sep = "&" if "?" in url else "?"
        assert_bad_parameter(api_client.get(f"{url}{sep}fields=tree_id"), "fields")


# --- HTTP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "content_type", "extension"),
    [
        (CSV, "text/csv; charset=utf-8; header=present", "csv"),
        (GEOJSON, "application/geo+json", "geojson"),
        (NDJSON, "application/x-ndjson", "ndjson"),
    ],
)
def test_an_export_is_an_attachment_named_by_the_data_version(
    api_client, census, url, content_type, extension
):
    response = api_client.get(url)
    assert response["Content-Type"] == content_type
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="trees-')
    assert disposition.endswith(f'.{extension}"')
    from trees.cache import data_version

    assert f"-v{data_version().number}." in disposition


@pytest.mark.parametrize("url", EXPORTS)
def test_gzip_when_asked_round_trips(api_client, census, url):
    plain = body(api_client.get(url))
    response = api_client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(body(response)) == plain


@pytest.mark.parametrize("accept", ["", "identity", "gzip;q=0", "br"])
def test_no_gzip_unless_allowed(api_client, census, accept):
    response = api_client.get(CSV, HTTP_ACCEPT_ENCODING=accept)
    assert "Content-Encoding" not in response
    assert body(response).startswith(b"tree_id,")
    assert "Accept-Encoding" in response["Vary"]


def test_an_export_is_streamed_in_bounded_chunks(api_client, db):
    generate_trees(3000)  # ~1.2 MB of CSV
    response = api_client.get(CSV)
    assert response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > 10
    assert max(len(chunk) for chunk in chunks) < export.CHUNK_BYTES + 2048  # a chunk and a row
    assert b"".join(chunks).count(b"\n") == 3001


def test_gzip_is_streamed_in_chunks_too(api_client, db):
    generate_trees(3000)
    response = api_client.get(GEOJSON, HTTP_ACCEPT_ENCODING="gzip")
    chunks = list(response.streaming_content)
    assert len(chunks) > 3
    assert len(json.loads(gzip.decompress(b"".join(chunks)))["features"]) == 3000


def copy_without_lifting(sql: str, params) -> None:
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(sql, params) as c:
        for _ in c:
            pass


@pytest.mark.django_db(transaction=True)  # as a web request: no transaction around it
def test_the_export_lifts_the_statement_timeout_for_itself_only():
    generate_trees(30_000)
    sql, params = export.csv_sql(Tree.objects.all(), export.EXPORT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '20ms'")  # as trees.database sets it
        try:
            # The same COPY without the lift is cancelled: the export below proves something.
            with pytest.raises(QueryCanceled):
                copy_without_lifting(sql, params)
            rows = b"".join(export.csv_rows(Tree.objects.all(), export.EXPORT_COLUMNS))
            cursor.execute("SHOW statement_timeout")
            after = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET statement_timeout")
    assert rows.count(b"\n") == 30_001
    assert after == "20ms"  # lifted for the export's transaction only


@pytest.mark.parametrize("url", EXPORTS)
def test_head_has_the_headers_and_no_body(api_client, census, url):
    get = api_client.get(url)
    head = api_client.head(url)
    assert head.status_code == 200
    assert not head.streaming
    assert head.content == b""
    for name in ("Content-Type", "Content-Disposition", "ETag", "Last-Modified"):
        assert head[name] == get[name]


def test_if_none_match_of_the_current_etag_is_a_304(api_client, census):
    etag = api_client.get(CSV)["ETag"]
    response = api_client.get(CSV, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""


def test_the_etag_follows_the_filters_the_encoding_and_the_format(api_client, census):
    etags = {
        api_client.get(CSV)["ETag"],
        api_client.get(f"{CSV}?borough=Bronx")["ETag"],
        api_client.get(CSV, HTTP_ACCEPT_ENCODING="gzip")["ETag"],
        api_client.get(GEOJSON)["ETag"],
    }
    assert len(etags) == 4
    same = api_client.get(f"{CSV}?borough=Bronx&borough=Queens")["ETag"]
    assert api_client.get(f"{CSV}?borough=Queens&borough=Bronx")["ETag"] == same


def test_a_data_change_changes_the_etag(api_client, census):
    from trees.cache import bump_data_version

    before = api_client.get(CSV)["ETag"]
    bump_data_version()
    assert api_client.get(CSV, HTTP_IF_NONE_MATCH=before).status_code == 200


def test_exports_are_not_stored_in_the_response_cache(api_client, census):
    api_client.get(CSV)
    assert "X-Cache" not in api_client.get(CSV)


def test_the_export_views_carry_the_export_throttle_scope():
    views = (TreeCSVExportView, TreeGeoJSONExportView, TreeNDJSONExportView)
    assert {view.throttle_scope for view in views} == {"export"}


@pytest.mark.django_db(transaction=True)  # as a web request: no transaction around it
def test_a_client_gone_mid_export_ends_the_copy_and_leaves_the_connection_usable():
    generate_trees(3000)
    chunks = export.csv_rows(Tree.objects.all(), export.EXPORT_COLUMNS)
    assert next(chunks).startswith(b"tree_id,")
    chunks.close()  # as the response does when the WSGI server closes it (client gone)
    assert not connection.in_atomic_block  # the export's transaction rolled back
    assert Tree.objects.count() == 3000


@pytest.mark.parametrize("url", EXPORTS)
def test_a_filter_that_can_match_nothing_exports_no_tree(api_client, census, url):
    response = api_client.get(f"{url}?species=no such tree&fields=tree_id")
    if url == CSV:
        assert body(response) == b"tree_id\n"
    else:
        assert features(response) == []


def test_the_geojson_export_matches_its_schema(api_client, census):
    import jsonschema

    from tests.api.schema import response_schema

    schema = response_schema("/api/v1/trees/export.geojson", 200, "application/geo+json")
    jsonschema.Draft202012Validator(schema).validate(json.loads(body(api_client.get(GEOJSON))))

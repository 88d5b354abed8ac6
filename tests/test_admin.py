import datetime
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import SpeciesFactory, SyncRunFactory, TreeFactory
from trees import minimap
from trees.admin import EstimatedCountPaginator, humanise_duration
from trees.models import DataVersion, Species, SyncRun, Tree

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:trees_tree_changelist")


def listed_ids(response) -> list[int]:
    return [tree.tree_id for tree in response.context["cl"].result_list]


@pytest.fixture
def census():
    """Four trees that differ in exactly the ways the filters and search look at."""
    maple = SpeciesFactory(latin_name="Acer rubrum", common_name="red maple")
    oak = SpeciesFactory(latin_name="Quercus palustris", common_name="pin oak")
    return {
        "maple": TreeFactory(
            tree_id=180683, species=maple, address="108-005 70 AVENUE", zipcode="11375"
        ),
        "oak": TreeFactory(
            tree_id=200540,
            species=oak,
            borough="Brooklyn",
            health="Good",
            address="147 BAY RIDGE PARKWAY",
            zipcode="11209",
        ),
        "dead": TreeFactory(
            tree_id=204026, species=None, status="Dead", health="", curb_loc="OffsetFromCurb"
        ),
        "bronx": TreeFactory(tree_id=204337, species=oak, borough="Bronx", health="Poor"),
    }


@pytest.mark.parametrize(
    "url",
    [
        CHANGELIST,
        reverse("admin:trees_species_changelist"),
        reverse("admin:trees_syncrun_changelist"),
        reverse("admin:index"),
    ],
)
def test_anonymous_users_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_changelist_lists_trees_with_species_names(admin_client, census):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert listed_ids(response) == [180683, 200540, 204026, 204337]
    assert b"red maple" in response.content
    assert b"pin oak" in response.content


def test_changelist_queries_do_not_grow_with_rows(admin_client, census):
    with CaptureQueriesContext(connection) as few:
        admin_client.get(CHANGELIST)
    TreeFactory.create_batch(20)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(CHANGELIST)
    assert len(many) == len(few)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("borough__exact=Brooklyn", [200540]),
        ("borough__exact=Bronx", [204337]),
        ("health__exact=Poor", [204337]),
        ("status__exact=Dead", [204026]),
        ("curb_loc__exact=OffsetFromCurb", [204026]),
    ],
)
def test_each_filter_narrows_the_list(admin_client, census, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert listed_ids(response) == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("bay ridge", [200540]),  # part of an address, any case
        ("180683", [180683]),  # tree id
        ("11209", [200540]),  # ZIP code
        ("pin oak", [200540, 204337]),  # common name
        ("Quercus", [200540, 204337]),  # latin name
        ("no such thing", []),
    ],
)
def test_search(admin_client, census, term, expected):
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert listed_ids(response) == expected


def test_search_and_filter_combine(admin_client, census):
    response = admin_client.get(CHANGELIST, {"q": "oak", "borough__exact": "Bronx"})
    assert listed_ids(response) == [204337]


def test_change_view_shows_the_tree(admin_client, census):
    response = admin_client.get(reverse("admin:trees_tree_change", args=[180683]))
    assert response.status_code == 200
    assert b"108-005 70 AVENUE" in response.content


def test_species_is_chosen_by_autocomplete(admin_client, census):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "trees", "model_name": "tree", "field_name": "species", "term": "oak"},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["pin oak (Quercus palustris)"]


def test_species_changelist_counts_trees(admin_client, census):
    response = admin_client.get(reverse("admin:trees_species_changelist"))
    assert response.status_code == 200
    counts = {s.latin_name: s.tree_count for s in response.context["cl"].result_list}
    assert counts == {"Acer rubrum": 1, "Quercus palustris": 2}


def test_species_change_view(admin_client, census):
    oak = Species.objects.get(latin_name="Quercus palustris")
    response = admin_client.get(reverse("admin:trees_species_change", args=[oak.pk]))
    assert response.status_code == 200


def test_sync_runs_are_listed_newest_first(admin_client):
    older = SyncRunFactory()
    newer = SyncRunFactory(status=SyncRun.Status.FAILED, error_message="Socrata unreachable")
    response = admin_client.get(reverse("admin:trees_syncrun_changelist"))
    assert response.status_code == 200
    assert [run.pk for run in response.context["cl"].result_list] == [newer.pk, older.pk]


def test_sync_run_detail_is_read_only(admin_client):
    run = SyncRunFactory()
    response = admin_client.get(reverse("admin:trees_syncrun_change", args=[run.pk]))
    assert response.status_code == 200
    assert b"latitude is not a number" in response.content
    assert b'name="_save"' not in response.content
    post = admin_client.post(reverse("admin:trees_syncrun_change", args=[run.pk]), {})
    assert post.status_code == 403


def test_sync_runs_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:trees_syncrun_add")).status_code == 403


def test_unfiltered_count_is_estimated_not_counted(monkeypatch, census):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Tree._meta.db_table}")
    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(Tree.objects.all(), 50).count
    assert count == 4
    assert not any("COUNT(" in q["sql"].upper() for q in queries)


def test_filtered_count_is_exact(monkeypatch, census):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
    assert EstimatedCountPaginator(Tree.objects.filter(borough="Queens"), 50).count == 2


# --- Admin edits (with ADMIN_ALLOW_EDITS) invalidate the API's cache, as a sync does ----------


def data_version_number() -> int:
    return DataVersion.objects.get(pk=DataVersion.SINGLETON_PK).version


def test_saving_a_tree_bumps_the_data_version(census, rf, admin_user):
    before = data_version_number()
    tree = census["oak"]
    tree.health = "Poor"
    request = rf.post("/")
    request.user = admin_user
    admin.site._registry[Tree].save_model(request, tree, form=None, change=True)
    assert data_version_number() > before
    assert Tree.objects.get(pk=tree.pk).health == "Poor"


@override_settings(ADMIN_ALLOW_EDITS=True)
def test_deleting_a_tree_bumps_the_data_version(admin_client, census):
    before = data_version_number()
    url = reverse("admin:trees_tree_delete", args=[census["dead"].pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert data_version_number() > before


@override_settings(ADMIN_ALLOW_EDITS=True)
def test_bulk_delete_bumps_the_data_version(admin_client, census):
    before = data_version_number()
    response = admin_client.post(
        CHANGELIST,
        {
            "action": "delete_selected",
            "_selected_action": [census["dead"].pk, census["bronx"].pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert data_version_number() > before
    assert Tree.objects.count() == 2


@override_settings(ADMIN_ALLOW_EDITS=True)
def test_renaming_a_species_bumps_the_data_version(admin_client, census):
    before = data_version_number()
    species = census["oak"].species
    url = reverse("admin:trees_species_change", args=[species.pk])
    response = admin_client.post(url, {"latin_name": species.latin_name, "common_name": "oak"})
    assert response.status_code == 302
    assert data_version_number() > before


# --- Read-only by default: the next sync would overwrite an edit ------------------------------

TREE_CHANGE = "admin:trees_tree_change"


def test_a_superuser_sees_a_tree_read_only(admin_client, census):
    response = admin_client.get(reverse(TREE_CHANGE, args=[180683]))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert b'name="address"' not in response.content
    assert b"108-005 70 AVENUE" in response.content


def test_a_superuser_cannot_post_a_tree_edit(admin_client, census):
    url = reverse(TREE_CHANGE, args=[180683])
    assert admin_client.post(url, {"address": "1 MAIN STREET"}).status_code == 403
    assert Tree.objects.get(pk=180683).address == "108-005 70 AVENUE"


def test_the_tree_list_has_no_add_button_or_delete_action(admin_client, census):
    response = admin_client.get(CHANGELIST)
    assert reverse("admin:trees_tree_add").encode() not in response.content
    assert b"delete_selected" not in response.content


@pytest.mark.parametrize("name", ["tree", "species"])
def test_nothing_can_be_added_by_hand(admin_client, name):
    assert admin_client.get(reverse(f"admin:trees_{name}_add")).status_code == 403


def test_a_tree_cannot_be_deleted(admin_client, census):
    url = reverse("admin:trees_tree_delete", args=[census["dead"].pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Tree.objects.filter(pk=census["dead"].pk).exists()


def test_a_species_cannot_be_renamed(admin_client, census):
    species = census["oak"].species
    url = reverse("admin:trees_species_change", args=[species.pk])
    response = admin_client.post(url, {"latin_name": species.latin_name, "common_name": "oak"})
    assert response.status_code == 403
    assert Species.objects.get(pk=species.pk).common_name == "pin oak"


def test_read_only_pages_carry_no_sync_warning(admin_client, census):
    response = admin_client.get(reverse(TREE_CHANGE, args=[180683]))
    assert b"next sync will overwrite" not in response.content


@override_settings(ADMIN_ALLOW_EDITS=True)
def test_with_edits_allowed_a_tree_can_be_edited(admin_client, census):
    url = reverse(TREE_CHANGE, args=[180683])
    page = admin_client.get(url)
    assert b'name="_save"' in page.content
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if name in form.fields and value is not None
    }
    data["address"] = "1 MAIN STREET"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tree.objects.get(pk=180683).address == "1 MAIN STREET"


@override_settings(ADMIN_ALLOW_EDITS=True)
@pytest.mark.parametrize("name", ["tree", "species"])
def test_with_edits_allowed_the_change_page_warns(admin_client, census, name):
    obj = census["maple"] if name == "tree" else census["maple"].species
    response = admin_client.get(reverse(f"admin:trees_{name}_change", args=[obj.pk]))
    assert b"the next sync will overwrite any edit made here" in response.content


# --- Sync runs: humane figures, one time zone -------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.9, "0.9 s"),
        (9.94, "9.9 s"),
        (42.4, "42 s"),
        (60, "1 min"),
        (252, "4 min 12 s"),
        (7500, "2 h 5 min"),
        (7200, "2 h"),
    ],
)
def test_durations_read_as_words(seconds, expected):
    assert humanise_duration(datetime.timedelta(seconds=seconds)) == expected


def test_a_running_sync_has_no_duration():
    assert humanise_duration(None) == "—"


def test_sync_run_list_shows_counts_with_thousands_separators(admin_client):
    SyncRunFactory(rows_fetched=683_788, rows_inserted=683_700, rows_updated=1_000)
    response = admin_client.get(reverse("admin:trees_syncrun_changelist"))
    assert b"683,788" in response.content  # fetched
    assert b"684,700" in response.content  # changed: inserted, updated and deleted


@override_settings(TIME_ZONE="America/New_York")
def test_sync_run_times_are_in_the_project_time_zone(admin_client):
    started = datetime.datetime(2026, 1, 5, 17, 0, 0, tzinfo=datetime.UTC)
    run = SyncRunFactory(finished_at=started + datetime.timedelta(minutes=4, seconds=12))
    SyncRun.objects.filter(pk=run.pk).update(started_at=started)
    response = admin_client.get(reverse("admin:trees_syncrun_change", args=[run.pk]))
    content = response.content.decode()
    assert "2026-01-05 12:00:00 EST" in content
    assert "2026-01-05 12:04:12 EST" in content
    assert "4 min 12 s" in content
    assert "America/New_York" in content


def test_sync_run_detail_lists_its_warnings_escaped(admin_client):
    run = SyncRunFactory(warnings=["3 rows <b>skipped</b>", "page 2 retried"])
    response = admin_client.get(reverse("admin:trees_syncrun_change", args=[run.pk]))
    assert b"<li>3 rows &lt;b&gt;skipped&lt;/b&gt;</li>" in response.content
    assert b"<li>page 2 retried</li>" in response.content


# --- Labels and the site's name -----------------------------------------------------------------


@pytest.mark.parametrize("model", [Tree, Species, SyncRun])
def test_labels_and_help_texts_read_as_words(model):
    for field in model._meta.get_fields():
        if not hasattr(field, "verbose_name") or field.auto_created:
            continue
        for text in (str(field.verbose_name), str(getattr(field, "help_text", ""))):
            assert "`" not in text, field.name
            assert "_" not in text, field.name


def test_the_tree_form_names_fields_in_words(admin_client, census):
    response = admin_client.get(reverse(TREE_CHANGE, args=[180683]))
    content = response.content.decode()
    assert "Trunk: lights" in content
    assert "Trunk diameter (in)" in content
    assert not re.search(r"Trnk light|Tree dbh|Brch ", content)


def test_the_admin_names_the_project(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert b"NYC street trees" in response.content


# --- The minimap --------------------------------------------------------------------------------


def test_the_tree_page_draws_it_among_its_neighbours(admin_client):
    tree = TreeFactory(latitude=40.72309, longitude=-73.84421)
    near = TreeFactory(latitude=40.72359, longitude=-73.84421)  # ~56 m north
    far = TreeFactory(latitude=40.72509, longitude=-73.84421)  # ~220 m north
    response = admin_client.get(reverse(TREE_CHANGE, args=[tree.pk]))
    content = response.content.decode()
    start = content.index('<svg xmlns="http://www.w3.org/2000/svg" class="minimap"')
    svg = content[start : content.index("</svg>", start)]
    assert svg.count('class="tree"') == 1
    assert svg.count('class="neighbour"') == 1
    assert f"Tree {near.tree_id}" in svg
    assert reverse(TREE_CHANGE, args=[near.pk]) in svg
    assert f"Tree {far.tree_id}" not in svg


def test_the_minimap_places_the_tree_in_the_middle_and_a_neighbour_north():
    centre = minimap.Place(40.7, -73.9, "centre")
    north = minimap.Place(40.7 + 75 / minimap.METRES_PER_DEGREE_LATITUDE, -73.9, "north")
    svg = minimap.render(centre, [north], radius=150, size=300)
    assert '<circle class="tree" cx="150.0" cy="150.0"' in svg
    assert '<circle class="neighbour" cx="150.0" cy="75.0"' in svg
    assert ">100 m</text>" in svg


def test_the_minimap_escapes_labels_and_links():
    centre = minimap.Place(40.7, -73.9, "<script>alert(1)</script>")
    other = minimap.Place(40.7001, -73.9, 'a "quoted" & <b>', href='/x?a=1&b="2"')
    svg = minimap.render(centre, [other])
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "a &quot;quoted&quot; &amp; &lt;b&gt;" in svg
    assert 'href="/x?a=1&amp;b=&quot;2&quot;"' in svg

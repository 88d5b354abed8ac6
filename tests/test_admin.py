import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import SpeciesFactory, SyncRunFactory, TreeFactory
from trees.admin import EstimatedCountPaginator
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


# --- Admin edits invalidate the API's cache, as a sync does ------------------------------------


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


def test_deleting_a_tree_bumps_the_data_version(admin_client, census):
    before = data_version_number()
    url = reverse("admin:trees_tree_delete", args=[census["dead"].pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert data_version_number() > before


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


def test_renaming_a_species_bumps_the_data_version(admin_client, census):
    before = data_version_number()
    species = census["oak"].species
    url = reverse("admin:trees_species_change", args=[species.pk])
    response = admin_client.post(url, {"latin_name": species.latin_name, "common_name": "oak"})
    assert response.status_code == 302
    assert data_version_number() > before

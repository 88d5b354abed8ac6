import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from tests.counts import counted_groups, counted_trees, group_counts, tree_counts
from tests.factories import SpeciesFactory, TreeFactory
from trees.models import Borough, Health, Species, Status, Tree, TreeCount, TreeGroupCount

pytestmark = pytest.mark.django_db


def test_tree_id_is_unique():
    TreeFactory(tree_id=180683)
    with pytest.raises(IntegrityError):
        TreeFactory(tree_id=180683)


def test_species_latin_name_is_unique():
    Species.objects.create(latin_name="Acer rubrum", common_name="red maple")
    with pytest.raises(IntegrityError):
        Species.objects.create(latin_name="Acer rubrum", common_name="another")


def test_dead_tree_has_no_species_or_health():
    tree = TreeFactory(status=Status.DEAD, health="", species=None)
    tree.full_clean()
    assert Tree.objects.get(pk=tree.pk).species is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "Fine"), ("borough", "Jersey City"), ("health", "Okay")],
)
def test_closed_domains_are_enforced_by_the_database(field, value):
    with pytest.raises(IntegrityError):
        TreeFactory(**{field: value})


def test_closed_domains_are_enforced_by_validation():
    tree = TreeFactory.build(curb_loc="Floating", species=SpeciesFactory())
    with pytest.raises(ValidationError) as excinfo:
        tree.full_clean()
    assert "curb_loc" in excinfo.value.message_dict


@pytest.mark.parametrize(("latitude", "longitude"), [(0.0, 0.0), (40.7, -80.0), (45.0, -73.9)])
def test_coordinates_outside_new_york_are_refused(latitude, longitude):
    with pytest.raises(IntegrityError):
        TreeFactory(latitude=latitude, longitude=longitude)


def test_bbl_needs_more_than_32_bits():
    tree = TreeFactory(bbl=5_080_500_019)
    assert Tree.objects.get(pk=tree.pk).bbl == 5_080_500_019


def test_choices_match_the_census_vocabulary():
    assert Status.values == ["Alive", "Dead", "Stump"]
    assert Health.values == ["Good", "Fair", "Poor"]
    assert Borough.values == ["Manhattan", "Bronx", "Brooklyn", "Queens", "Staten Island"]


def test_species_in_use_cannot_be_deleted():
    tree = TreeFactory()
    with pytest.raises(IntegrityError):
        tree.species.delete()


# --- TreeCount, kept by triggers (migration 0003) -----------------------------------------------


def test_tree_counts_follow_inserts():
    species = SpeciesFactory()
    TreeFactory.create_batch(3, borough=Borough.BRONX, tree_dbh=10, species=species)
    TreeFactory(borough=Borough.QUEENS, species=species)
    assert tree_counts() == counted_trees()
    assert sorted(tree_counts().values()) == [1, 3]


def test_tree_counts_follow_an_update_of_one_tree():
    trees = TreeFactory.create_batch(2, health=Health.GOOD)
    trees[0].health = Health.POOR
    trees[0].save()
    assert tree_counts() == counted_trees()


def test_tree_counts_follow_a_bulk_update():
    TreeFactory.create_batch(5, tree_dbh=4, species=SpeciesFactory())
    Tree.objects.filter(tree_dbh=4).update(tree_dbh=30, borough=Borough.BROOKLYN)
    assert tree_counts() == counted_trees()
    assert list(tree_counts().values()) == [5]


def test_an_update_of_other_columns_leaves_the_counts_alone():
    TreeFactory.create_batch(2)
    before = list(TreeCount.objects.values_list("id", "count"))
    Tree.objects.update(address="1 MAIN STREET")
    assert list(TreeCount.objects.values_list("id", "count")) == before


def test_tree_counts_follow_deletes():
    trees = TreeFactory.create_batch(4, borough=Borough.MANHATTAN, species=SpeciesFactory())
    trees[0].delete()
    Tree.objects.filter(tree_id__in=[trees[1].tree_id, trees[2].tree_id]).delete()
    assert tree_counts() == counted_trees()
    assert list(tree_counts().values()) == [1]


def test_missing_values_count_as_one_group():
    """Stumps have no species and may have no diameter: NULLs must share one count."""
    for _ in range(3):
        TreeFactory(status=Status.STUMP, health="", species=None, tree_dbh=None)
    assert tree_counts() == {("Queens", "Stump", "", None, None): 3}


def test_truncating_the_trees_clears_the_counts():
    TreeFactory.create_batch(2)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign key check left pending
        cursor.execute("TRUNCATE trees_tree")
    assert not TreeCount.objects.exists()


# --- TreeGroupCount, kept by triggers (migration 0006_perf_group_counts) ------------------------


def test_group_counts_follow_inserts():
    TreeFactory.create_batch(3, nta="BX29", tree_dbh=10, health=Health.POOR)
    TreeFactory(nta="QN17", tree_dbh=10, council_district=None)
    assert group_counts() == counted_groups()
    assert group_counts()[("nta", "BX29", 10)] == (3, 3, 3)


def test_group_counts_count_every_column_once_per_tree():
    TreeFactory.create_batch(4)
    totals = {}
    for (column, _, _), (count, _, _) in group_counts().items():
        totals[column] = totals.get(column, 0) + count
    assert totals == dict.fromkeys(TreeGroupCount.COLUMNS, 4)


def test_group_counts_follow_a_change_of_health():
    """Health is no key: a tree turning Poor changes its keys' poor counts, not their counts."""
    trees = TreeFactory.create_batch(2, health=Health.GOOD, nta="MN12", tree_dbh=5)
    trees[0].health = Health.POOR
    trees[0].save()
    assert group_counts() == counted_groups()
    assert group_counts()[("nta", "MN12", 5)] == (2, 1, 2)


def test_group_counts_follow_a_bulk_update_of_the_columns():
    TreeFactory.create_batch(5, zipcode="11375", community_board=406, tree_dbh=4)
    Tree.objects.update(zipcode="10451", community_board=None, tree_dbh=30)
    assert group_counts() == counted_groups()
    assert group_counts()[("community_board", None, 30)] == (5, 0, 5)
    assert ("zipcode", "11375", 4) not in group_counts()


def test_group_counts_follow_deletes():
    trees = TreeFactory.create_batch(4, nta="SI22")
    trees[0].delete()
    Tree.objects.filter(tree_id__in=[trees[1].tree_id, trees[2].tree_id]).delete()
    assert group_counts() == counted_groups()
    assert sum(count for (column, _, _), (count, _, _) in group_counts().items()
               if column == "nta") == 1  # fmt: skip


def test_an_update_of_other_columns_leaves_the_group_counts_alone():
    TreeFactory.create_batch(2)
    before = list(TreeGroupCount.objects.order_by("id").values_list("id", "count", "poor"))
    Tree.objects.update(address="1 MAIN STREET", borough=Borough.BRONX)
    assert list(TreeGroupCount.objects.order_by("id").values_list("id", "count", "poor")) == before


def test_truncating_the_trees_clears_the_group_counts():
    TreeFactory.create_batch(2)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign key check left pending
        cursor.execute("TRUNCATE trees_tree")
    assert not TreeGroupCount.objects.exists()


def _location_of(tree_id: int) -> tuple[float, float, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ST_X(location), ST_Y(location), ST_SRID(location) FROM trees_tree "
            "WHERE tree_id = %s",
            [tree_id],
        )
        return cursor.fetchone()


def test_every_tree_has_a_point_at_its_longitude_and_latitude():
    tree = TreeFactory(latitude=40.7128, longitude=-74.006)
    assert _location_of(tree.tree_id) == (-74.006, 40.7128, 4326)


def test_a_trees_point_moves_with_its_coordinates():
    tree = TreeFactory(latitude=40.7128, longitude=-74.006)
    Tree.objects.filter(pk=tree.pk).update(latitude=40.75, longitude=-73.9)
    assert _location_of(tree.tree_id) == (-73.9, 40.75, 4326)

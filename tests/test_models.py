import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from tests.factories import SpeciesFactory, TreeFactory
from trees.models import Borough, Health, Species, Status, Tree

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

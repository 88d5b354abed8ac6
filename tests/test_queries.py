"""The read-side queries the API and admin use, on real Postgres."""

import math
import random

import pytest
from django.db import connection

from tests.factories import SpeciesFactory, TreeFactory
from trees import queries
from trees.models import Tree

pytestmark = pytest.mark.django_db

LAT, LON = 40.7, -73.9


def ids(queryset) -> list[int]:
    return sorted(queryset.values_list("tree_id", flat=True))


def metres_north(metres: float) -> dict:
    return {"latitude": LAT + metres / queries.METRES_PER_DEGREE, "longitude": LON}


def test_within_radius_is_exact_at_the_edge():
    TreeFactory(tree_id=1, **metres_north(4999))
    TreeFactory(tree_id=2, **metres_north(5001))
    found = queries.within_radius(Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=5000)
    assert ids(found) == [1]
    assert found.get().distance == pytest.approx(4999, abs=0.001)


def test_within_radius_measures_east_west_on_the_sphere():
    # 0.01 degrees of longitude at 40.7 N is about 843 m.
    TreeFactory(tree_id=1, latitude=LAT, longitude=LON + 0.01)
    found = queries.within_radius(Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=900)
    assert found.get().distance == pytest.approx(843.2, abs=1)
    assert not queries.within_radius(
        Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=800
    ).exists()


def test_within_radius_near_a_pole_runs():
    found = queries.within_radius(Tree.objects.all(), latitude=89.999, longitude=0, radius_m=5000)
    assert list(found) == []


def test_in_bbox_includes_its_edges():
    TreeFactory(tree_id=1, latitude=40.7, longitude=-73.9)
    TreeFactory(tree_id=2, latitude=40.8, longitude=-73.8)
    TreeFactory(tree_id=3, latitude=40.80001, longitude=-73.8)
    box = queries.in_bbox(
        Tree.objects.all(), min_lon=-73.9, min_lat=40.7, max_lon=-73.8, max_lat=40.8
    )
    assert ids(box) == [1, 2]


@pytest.fixture
def scattered_trees():
    """400 trees around (LAT, LON), a few exactly on or a hair past a box's edges, and the
    spatial index forced, so the results below come from the GiST index, not a scan."""
    rng = random.Random(12)
    points = [(LAT + rng.uniform(-0.01, 0.01), LON + rng.uniform(-0.01, 0.01)) for _ in range(400)]
    # On the edges of the box (LAT +- 0.005, LON +- 0.005) and 1e-9 degrees (0.1 mm) outside.
    for dlat, dlon in [(0.005, 0), (-0.005, 0), (0, 0.005), (0, -0.005), (0.005, 0.005)]:
        for past in (0, 1e-9):
            points.append((LAT + dlat + math.copysign(past, dlat) if dlat else LAT, LON + dlon))
            points.append((LAT + dlat, LON + dlon + math.copysign(past, dlon) if dlon else LON))
    for tree_id, (latitude, longitude) in enumerate(points, start=1):
        TreeFactory(tree_id=tree_id, latitude=latitude, longitude=longitude)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trees_tree")
        cursor.execute("SET LOCAL enable_seqscan = off")
    return points


def by_coordinates(min_lon, min_lat, max_lon, max_lat) -> list[int]:
    """The trees in a box by their coordinates alone: the query bbox ran before PostGIS."""
    return ids(
        Tree.objects.filter(
            latitude__gte=min_lat,
            latitude__lte=max_lat,
            longitude__gte=min_lon,
            longitude__lte=max_lon,
        )
    )


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * queries.EARTH_RADIUS_M * math.asin(math.sqrt(a))


def test_in_bbox_reads_the_gist_index(scattered_trees):
    box = queries.in_bbox(
        Tree.objects.all(), min_lon=LON - 0.005, min_lat=LAT - 0.005, max_lon=LON, max_lat=LAT
    )
    assert "tree_location_gist" in box.explain()


def test_in_bbox_finds_what_the_coordinates_say_edges_included(scattered_trees):
    box = {"min_lon": LON - 0.005, "min_lat": LAT - 0.005, "max_lon": LON + 0.005}
    box["max_lat"] = LAT + 0.005
    found = ids(queries.in_bbox(Tree.objects.all(), **box))
    assert found == by_coordinates(**box)
    assert 50 < len(found) < 400  # a real part of the trees, edges included
    on_edges = [i for i, (la, lo) in enumerate(scattered_trees, 1) if abs(la - LAT) == 0.005]
    assert set(on_edges) <= set(found)


def test_in_bbox_matches_the_coordinates_for_random_boxes(scattered_trees):
    rng = random.Random(7)
    for _ in range(30):
        lat, lon = LAT + rng.uniform(-0.01, 0.01), LON + rng.uniform(-0.01, 0.01)
        box = {"min_lon": lon, "min_lat": lat, "max_lon": lon + rng.uniform(0, 0.01)}
        box["max_lat"] = lat + rng.uniform(0, 0.01)
        assert ids(queries.in_bbox(Tree.objects.all(), **box)) == by_coordinates(**box)


def test_within_radius_matches_the_great_circle_for_random_circles(scattered_trees):
    rng = random.Random(8)
    for _ in range(30):
        lat, lon = LAT + rng.uniform(-0.01, 0.01), LON + rng.uniform(-0.01, 0.01)
        radius = rng.uniform(10, 800)
        found = queries.within_radius(
            Tree.objects.all(), latitude=lat, longitude=lon, radius_m=radius
        )
        expected = {
            i: great_circle_m(lat, lon, la, lo)
            for i, (la, lo) in enumerate(scattered_trees, 1)
            if great_circle_m(lat, lon, la, lo) <= radius
        }
        distances = dict(found.values_list("tree_id", "distance"))
        assert sorted(distances) == sorted(expected)
        for tree_id, distance in distances.items():
            assert distance == pytest.approx(expected[tree_id], abs=1e-6)


def test_of_species_named_matches_either_name_ignoring_case():
    maple = SpeciesFactory(latin_name="Acer rubrum", common_name="red maple")
    TreeFactory(tree_id=1, species=maple)
    TreeFactory(tree_id=2, species=SpeciesFactory(latin_name="Acer saccharum"))
    assert ids(queries.of_species_named(Tree.objects.all(), "Red Maple")) == [1]
    assert ids(queries.of_species_named(Tree.objects.all(), "acer RUBRUM")) == [1]
    assert ids(queries.of_species_named(Tree.objects.all(), "Acer")) == []


def test_species_with_tree_counts_includes_species_without_trees():
    oak = SpeciesFactory(latin_name="Quercus alba")
    SpeciesFactory(latin_name="Abies nobody")
    TreeFactory.create_batch(3, species=oak)
    counts = {s.latin_name: s.tree_count for s in queries.species_with_tree_counts()}
    assert counts == {"Abies nobody": 0, "Quercus alba": 3}


def test_tree_stats_of_an_impossible_filter_are_zeros():
    TreeFactory(tree_id=1)
    stats = queries.tree_stats(Tree.objects.none())
    assert stats.total == 0
    assert {tally.count for tally in stats.by_borough} == {0}


def test_tree_stats_histogram_bins_are_six_inches():
    for tree_id, dbh in enumerate([0, 5, 6, 47, 48, 200, None], start=1):
        TreeFactory(tree_id=tree_id, tree_dbh=dbh)
    histogram = queries.tree_stats(Tree.objects.all()).diameter_histogram
    assert [(b.min_inches, b.count) for b in histogram if b.count] == [
        (0, 2),
        (6, 1),
        (42, 1),
        (48, 2),
    ]
    assert histogram[-1].max_inches is None


def test_tree_stats_with_near_does_not_group_by_distance():
    for tree_id in range(1, 4):
        TreeFactory(tree_id=tree_id, **metres_north(tree_id * 10))
    near = queries.within_radius(Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=25)
    stats = queries.tree_stats(near)
    assert stats.total == 2
    assert stats.by_borough[3].value == "Queens"
    assert stats.by_borough[3].count == 2


def test_tree_groups_median_interpolates_and_mean_is_exact():
    for tree_id, dbh in enumerate([2, 4, 10, 20], start=1):
        TreeFactory(tree_id=tree_id, tree_dbh=dbh, borough="Queens")
    TreeFactory(tree_id=9, tree_dbh=5, borough="Bronx")
    queens, bronx = queries.tree_groups(Tree.objects.all(), ["borough"])
    assert queens == queries.Group(
        values={"borough": "Queens"}, count=4, dbh_mean=9.0, dbh_median=7.0, poor_share=0.0
    )
    assert (bronx.count, bronx.dbh_median) == (1, 5.0)


def test_tree_groups_poor_share_counts_only_trees_with_a_health():
    TreeFactory(tree_id=1, health="Poor")
    TreeFactory(tree_id=2, health="Good")
    TreeFactory(tree_id=3, health="Good")
    TreeFactory(tree_id=4, health="", status="Dead")
    (group,) = queries.tree_groups(Tree.objects.all(), ["nta"])
    assert group.poor_share == pytest.approx(1 / 3)


def test_tree_groups_report_empty_text_as_none():
    TreeFactory(tree_id=1, health="", status="Dead", species=None)
    (group,) = queries.tree_groups(Tree.objects.all(), ["health", "species"])
    assert group.values == {"health": None, "species": None}


def test_tree_groups_of_an_impossible_filter_are_none():
    TreeFactory(tree_id=1)
    assert queries.tree_groups(Tree.objects.none(), ["borough"]) == []


def test_species_with_tree_counts_of_some_trees_leaves_the_others_out():
    oak = SpeciesFactory(latin_name="Quercus alba")
    maple = SpeciesFactory(latin_name="Acer rubrum")
    TreeFactory(tree_id=1, species=oak, borough="Bronx")
    TreeFactory(tree_id=2, species=maple, borough="Queens")
    TreeFactory(tree_id=3, species=oak, borough="Bronx")
    counted = queries.species_with_tree_counts(Tree.objects.filter(borough="Bronx"))
    assert [(s.latin_name, s.tree_count) for s in counted] == [("Quercus alba", 2)]


def test_tree_groups_with_near_do_not_group_by_distance():
    for tree_id in range(1, 4):
        TreeFactory(tree_id=tree_id, **metres_north(tree_id * 10))
    near = queries.within_radius(Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=25)
    (group,) = queries.tree_groups(near, ["borough"])
    assert (group.values, group.count) == ({"borough": "Queens"}, 2)


def test_species_with_tree_counts_near_do_not_group_by_distance():
    maple = SpeciesFactory(latin_name="Acer rubrum")
    for tree_id in range(1, 4):
        TreeFactory(tree_id=tree_id, species=maple, **metres_north(tree_id * 10))
    near = queries.within_radius(Tree.objects.all(), latitude=LAT, longitude=LON, radius_m=25)
    assert [s.tree_count for s in queries.species_with_tree_counts(near)] == [2]


def test_tree_groups_measure_only_trees_with_a_diameter():
    TreeFactory(tree_id=1, tree_dbh=4, nta="QN17")
    TreeFactory(tree_id=2, tree_dbh=None, nta="QN17")
    TreeFactory(tree_id=3, tree_dbh=None, nta="BK31")
    qn17, bk31 = queries.tree_groups(Tree.objects.all(), ["nta"])
    assert (qn17.count, qn17.dbh_mean, qn17.dbh_median) == (2, 4.0, 4.0)
    assert (bk31.count, bk31.dbh_mean, bk31.dbh_median) == (1, None, None)

"""The list serializer's hand-made dicts equal what DRF's fields would make."""

import pytest
from rest_framework import serializers as drf_serializers
from rest_framework.renderers import JSONRenderer

from tests.factories import TreeFactory
from trees import queries
from trees.api.serializers import LIST_FIELDS, TreeSerializer

pytestmark = pytest.mark.django_db


def drf_representation(tree) -> dict:
    """DRF's own fields' dict of a list item's keys (LIST_FIELDS, without `fields=`)."""
    data = drf_serializers.ModelSerializer.to_representation(TreeSerializer(), tree)
    return {name: data[name] for name in LIST_FIELDS}


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"species": None, "status": "Dead", "health": "", "tree_dbh": None, "surveyed_on": None},
        {"problems": "Stones,BranchLights", "latitude": 40.5, "longitude": -74.25},
    ],
)
def test_fast_representation_equals_drfs(attributes):
    TreeFactory(tree_id=1, **attributes)
    tree = queries.trees().get()
    fast = TreeSerializer(queries.tree_summaries().get()).data
    assert JSONRenderer().render(fast) == JSONRenderer().render(drf_representation(tree))


def test_fast_representation_carries_the_distance():
    TreeFactory(tree_id=1, latitude=40.7, longitude=-73.9)
    near = {"latitude": 40.7, "longitude": -73.9, "radius_m": 10}
    tree = queries.within_radius(queries.trees(), **near).get()
    row = queries.within_radius(queries.tree_summaries(), **near).get()
    assert TreeSerializer(row).data["distance"] == drf_representation(tree)["distance"] == 0

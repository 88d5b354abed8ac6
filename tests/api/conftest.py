"""Fixtures for the API tests: a small census whose every filter has a known answer."""

import pytest
from rest_framework.test import APIClient

from tests.factories import SpeciesFactory, TreeFactory
from trees.queries import METRES_PER_DEGREE

# The point `near` queries are measured from, and offsets from it in metres. Offsets are
# due north, where one metre is exactly 1 / METRES_PER_DEGREE degrees of latitude for the
# haversine formula too, so a radius can be tested a metre either side of a tree.
CENTRE = (40.7000, -73.9000)


def north_of_centre(metres: float) -> dict:
    return {"latitude": CENTRE[0] + metres / METRES_PER_DEGREE, "longitude": CENTRE[1]}


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def census(db):
    """Six trees that differ in exactly the ways the filters look at; ids 101-106."""
    maple = SpeciesFactory(latin_name="Acer rubrum", common_name="red maple")
    oak = SpeciesFactory(latin_name="Quercus palustris", common_name="pin oak")
    plane = SpeciesFactory(latin_name="Platanus x acerifolia", common_name="London planetree")
    trees = {
        "maple_queens": TreeFactory(
            tree_id=101,
            species=maple,
            borough="Queens",
            zipcode="11375",
            nta="QN17",
            health="Good",
            tree_dbh=3,
            steward="None",
            problems="None",
            **north_of_centre(0),
        ),
        "oak_brooklyn": TreeFactory(
            tree_id=102,
            species=oak,
            borough="Brooklyn",
            zipcode="11209",
            nta="BK31",
            health="Fair",
            tree_dbh=12,
            steward="1or2",
            sidewalk="Damage",
            problems="Stones,BranchLights",
            **north_of_centre(100),
        ),
        "plane_manhattan": TreeFactory(
            tree_id=103,
            species=plane,
            borough="Manhattan",
            zipcode="10024",
            nta="MN12",
            health="Poor",
            tree_dbh=25,
            curb_loc="OffsetFromCurb",
            problems="RootOther",
            **north_of_centre(300),
        ),
        "dead_bronx": TreeFactory(
            tree_id=104,
            species=None,
            status="Dead",
            health="",
            steward="",
            guards="",
            sidewalk="",
            borough="Bronx",
            zipcode="10463",
            nta="BX29",
            tree_dbh=8,
            **north_of_centre(600),
        ),
        "stump_staten_island": TreeFactory(
            tree_id=105,
            species=None,
            status="Stump",
            health="",
            steward="",
            guards="",
            sidewalk="",
            borough="Staten Island",
            zipcode="10301",
            nta="SI22",
            tree_dbh=0,
            stump_diam=14,
            latitude=40.6000,
            longitude=-74.1000,
        ),
        "maple_bronx": TreeFactory(
            tree_id=106,
            species=maple,
            borough="Bronx",
            zipcode="10463",
            nta="BX29",
            health="Good",
            tree_dbh=50,
            steward="3or4",
            problems="Stones",
            latitude=40.8500,
            longitude=-73.8800,
        ),
    }
    return {"species": {"maple": maple, "oak": oak, "plane": plane}, **trees}


def listed_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [tree["tree_id"] for tree in response.json()["results"]]


def assert_bad_parameter(response, parameter: str) -> dict:
    """A 400 whose JSON body names `parameter` and says what is wrong with it."""
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == 400
    assert parameter in body["detail"]
    assert body["errors"][parameter], body
    assert all(isinstance(message, str) and message for message in body["errors"][parameter])
    return body

"""Small factory_boy factories with census-like defaults."""

import datetime

import factory
from django.utils import timezone

from trees.models import Borough, Health, Species, Status, SyncRun, Tree


class SpeciesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Species
        django_get_or_create = ["latin_name"]

    latin_name = factory.Sequence(lambda n: f"Acer species{n}")
    common_name = factory.Sequence(lambda n: f"maple {n}")


class TreeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tree

    tree_id = factory.Sequence(lambda n: 100_000 + n)
    block_id = 348711
    surveyed_on = datetime.date(2015, 8, 27)
    tree_dbh = 3
    stump_diam = 0
    curb_loc = "OnCurb"
    status = Status.ALIVE
    health = Health.FAIR
    species = factory.SubFactory(SpeciesFactory)
    steward = "None"
    guards = "None"
    sidewalk = "NoDamage"
    user_type = "TreesCount Staff"
    problems = "None"
    root_stone = False
    root_grate = False
    root_other = False
    trunk_wire = False
    trnk_light = False
    trnk_other = False
    brch_light = False
    brch_shoe = False
    brch_other = False
    address = factory.Sequence(lambda n: f"{100 + n} 70 AVENUE")
    zipcode = "11375"
    zip_city = "Forest Hills"
    community_board = 406
    borocode = 4
    borough = Borough.QUEENS
    cncldist = 29
    st_assem = 28
    st_senate = 16
    nta = "QN17"
    nta_name = "Forest Hills"
    boro_ct = 4073900
    state = "New York"
    latitude = 40.72309177
    longitude = -73.84421522
    x_sp = 1027431.148
    y_sp = 202756.7687
    council_district = 29
    census_tract = "739"
    bin = 4052307
    bbl = 4022210001
    socrata_id = factory.Sequence(lambda n: f"row-test~{n:04d}")
    socrata_updated_at = factory.LazyFunction(timezone.now)


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    dataset = "uvpi-gqnh"
    source = "https://data.cityofnewyork.us/resource/uvpi-gqnh.csv"
    mode = SyncRun.Mode.FULL
    status = SyncRun.Status.SUCCEEDED
    finished_at = factory.LazyFunction(timezone.now)
    rows_fetched = 1000
    rows_inserted = 990
    rows_rejected = 10
    rejection_samples = factory.LazyFunction(
        lambda: [{"tree_id": "12", "reason": "latitude is not a number: 'abc'"}]
    )


def soda_row(**overrides: str | None) -> dict[str, str]:
    """One 2015 census row as SODA sends it: every value a string (tree 180683, the first).

    Pass a value of None to leave the key out, as SODA does for a null.
    """
    row = {
        ":id": "row-6nmm_trd2~z4v7",
        ":updated_at": "2023-10-09T10:02:32.402Z",
        "tree_id": "180683",
        "block_id": "348711",
        "created_at": "2015-08-27T00:00:00.000",
        "tree_dbh": "3",
        "stump_diam": "0",
        "curb_loc": "OnCurb",
        "status": "Alive",
        "health": "Fair",
        "spc_latin": "Acer rubrum",
        "spc_common": "red maple",
        "steward": "None",
        "guards": "None",
        "sidewalk": "NoDamage",
        "user_type": "TreesCount Staff",
        "problems": "None",
        "root_stone": "No",
        "root_grate": "No",
        "root_other": "No",
        "trunk_wire": "No",
        "trnk_light": "No",
        "trnk_other": "No",
        "brch_light": "No",
        "brch_shoe": "No",
        "brch_other": "No",
        "address": "108-005 70 AVENUE",
        "zipcode": "11375",
        "zip_city": "Forest Hills",
        "cb_num": "406",
        "borocode": "4",
        "boroname": "Queens",
        "cncldist": "29",
        "st_assem": "28",
        "st_senate": "16",
        "nta": "QN17",
        "nta_name": "Forest Hills",
        "boro_ct": "4073900",
        "state": "New York",
        "latitude": "40.72309177",
        "longitude": "-73.84421522",
        "x_sp": "1027431.148",
        "y_sp": "202756.7687",
        "council_district": "29",
        "census_tract": "739",
        "bin": "4052307",
        "bbl": "4022210001",
    }
    row.update(overrides)
    return {key: value for key, value in row.items() if value is not None}

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
    census_tract = 739
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

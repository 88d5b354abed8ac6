"""The 2015 Street Tree Census, its species, and the record of every sync.

Field names follow the Socrata API names (see ../shared/SOCRATA.md) so analysts can match
them to the portal, except where a name would mislead: `created_at` there is the survey
date (stored as `surveyed_on`), `spc_latin`/`spc_common` become the `species` reference,
and `boroname`/`cb_num` become `borough`/`community_board`. Labels and help texts are the
admin's, in words; the Socrata names are in ../shared/SOCRATA.md.

The 1995 and 2005 censuses and the Parks live inventory will arrive as their own models
beside `Tree` (their fields and vocabularies differ), sharing `Species` where names match.
"""

import time

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone


class Species(models.Model):
    """A tree species, shared by every census that names it."""

    latin_name = models.CharField("Latin name", max_length=200, unique=True)
    common_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["latin_name"]
        verbose_name_plural = "species"
        indexes = [models.Index(fields=["common_name"])]

    def __str__(self) -> str:
        if self.common_name:
            return f"{self.common_name} ({self.latin_name})"
        return self.latin_name


class Borough(models.TextChoices):
    MANHATTAN = "Manhattan"
    BRONX = "Bronx"
    BROOKLYN = "Brooklyn"
    QUEENS = "Queens"
    STATEN_ISLAND = "Staten Island"


class CurbLocation(models.TextChoices):
    ON_CURB = "OnCurb", "On curb"
    OFFSET_FROM_CURB = "OffsetFromCurb", "Offset from curb"


class Status(models.TextChoices):
    ALIVE = "Alive"
    DEAD = "Dead"
    STUMP = "Stump"


class Health(models.TextChoices):
    GOOD = "Good"
    FAIR = "Fair"
    POOR = "Poor"


class Steward(models.TextChoices):
    NONE = "None"
    ONE_OR_TWO = "1or2", "1 or 2"
    THREE_OR_FOUR = "3or4", "3 or 4"
    FOUR_OR_MORE = "4orMore", "4 or more"


class Guards(models.TextChoices):
    NONE = "None"
    HELPFUL = "Helpful"
    HARMFUL = "Harmful"
    UNSURE = "Unsure"


class Sidewalk(models.TextChoices):
    NO_DAMAGE = "NoDamage", "No damage"
    DAMAGE = "Damage"


class UserType(models.TextChoices):
    TREESCOUNT_STAFF = "TreesCount Staff"
    VOLUNTEER = "Volunteer"
    NYC_PARKS_STAFF = "NYC Parks Staff"


# The partial indexes of Tree.Meta: (name, the trees it holds).
RARE_VALUE_INDEXES = [
    # ORs, not IN: Postgres spells an IN list's index predicate back differently, so a first
    # load (which rebuilds indexes from their definitions) would not match the migrations.
    ("tree_steward_rare_idx", models.Q(steward="3or4") | models.Q(steward="4orMore")),
    ("tree_guards_rare_idx", models.Q(guards="Harmful") | models.Q(guards="Unsure")),
    ("tree_curb_offset_idx", models.Q(curb_loc="OffsetFromCurb")),
    *(
        (f"tree_{flag}_idx", models.Q(**{flag: True}))
        for flag in (
            "root_stone",
            "root_grate",
            "root_other",
            "trunk_wire",
            "trnk_light",
            "trnk_other",
            "brch_light",
            "brch_shoe",
            "brch_other",
        )
    ),
]


class Tree(models.Model):
    """One row of the 2015 census (Socrata dataset uvpi-gqnh), keyed by its `tree_id`."""

    tree_id = models.BigIntegerField(
        "tree ID", primary_key=True, help_text="The census's own number for the tree."
    )
    block_id = models.IntegerField(
        "block ID", null=True, blank=True, help_text="The blockface the tree stands on."
    )
    surveyed_on = models.DateField(
        "surveyed on", null=True, blank=True, help_text="The day the tree was surveyed."
    )
    tree_dbh = models.PositiveSmallIntegerField(
        "trunk diameter (in)",
        null=True,
        blank=True,
        help_text="Trunk diameter in inches, measured about 4.5 ft above the ground.",
    )
    stump_diam = models.PositiveSmallIntegerField(
        "stump diameter (in)",
        null=True,
        blank=True,
        help_text="Stump diameter in inches; 0 for standing trees.",
    )
    curb_loc = models.CharField("curb position", max_length=14, choices=CurbLocation, blank=True)
    status = models.CharField(max_length=5, choices=Status)
    health = models.CharField(
        max_length=4, choices=Health, blank=True, help_text="Empty for dead trees and stumps."
    )
    species = models.ForeignKey(
        Species,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="trees",
        db_index=False,  # covered by the (species, tree_id) index below
        help_text="Empty for dead trees and stumps.",
    )
    steward = models.CharField(
        "signs of stewardship",
        max_length=7,
        choices=Steward,
        blank=True,
        help_text="How many signs of care by neighbours the surveyor saw.",
    )
    guards = models.CharField(
        "tree guard",
        max_length=7,
        choices=Guards,
        blank=True,
        help_text="Whether a guard is there, and whether it helps or harms the tree.",
    )
    sidewalk = models.CharField("sidewalk damage", max_length=8, choices=Sidewalk, blank=True)
    user_type = models.CharField("surveyed by", max_length=16, choices=UserType, blank=True)
    problems = models.TextField(
        blank=True, help_text="The problems found, separated by commas, or None."
    )
    root_stone = models.BooleanField("roots: paving stones", null=True)
    root_grate = models.BooleanField("roots: metal grates", null=True)
    root_other = models.BooleanField("roots: other problem", null=True)
    trunk_wire = models.BooleanField("trunk: wires or rope", null=True)
    trnk_light = models.BooleanField("trunk: lights", null=True)
    trnk_other = models.BooleanField("trunk: other problem", null=True)
    brch_light = models.BooleanField("branches: lights or wires", null=True)
    brch_shoe = models.BooleanField("branches: sneakers", null=True)
    brch_other = models.BooleanField("branches: other problem", null=True)
    address = models.CharField(
        max_length=200, blank=True, help_text="The nearest address, as estimated."
    )
    zipcode = models.CharField(
        "ZIP code", max_length=5, blank=True, help_text="Kept as text: 83 is Central Park."
    )
    zip_city = models.CharField(
        "ZIP code city",
        max_length=100,
        blank=True,
        help_text="The city of the ZIP code, not always the borough.",
    )
    community_board = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Borough digit followed by the district number: 406 is Queens 6.",
    )
    borocode = models.PositiveSmallIntegerField(
        "borough code",
        null=True,
        blank=True,
        help_text="1 Manhattan, 2 Bronx, 3 Brooklyn, 4 Queens, 5 Staten Island.",
    )
    borough = models.CharField(max_length=13, choices=Borough)
    cncldist = models.PositiveSmallIntegerField(
        "council district", null=True, blank=True, help_text="City Council district."
    )
    st_assem = models.PositiveSmallIntegerField("State Assembly district", null=True, blank=True)
    st_senate = models.PositiveSmallIntegerField("State Senate district", null=True, blank=True)
    nta = models.CharField(
        "neighborhood code",
        max_length=4,
        blank=True,
        help_text="2010 Neighborhood Tabulation Area code.",
    )
    nta_name = models.CharField(
        "neighborhood", max_length=100, blank=True, help_text="2010 Neighborhood Tabulation Area."
    )
    boro_ct = models.IntegerField(
        "borough and census tract",
        null=True,
        blank=True,
        help_text="Borough digit followed by a 6-digit census tract.",
    )
    state = models.CharField(max_length=20, blank=True)
    latitude = models.FloatField(help_text="Degrees north (WGS 84).")
    longitude = models.FloatField(help_text="Degrees east (WGS 84): negative in New York.")
    x_sp = models.FloatField(
        "State Plane x (ft)", null=True, blank=True, help_text="New York State Plane, feet."
    )
    y_sp = models.FloatField(
        "State Plane y (ft)", null=True, blank=True, help_text="New York State Plane, feet."
    )
    council_district = models.PositiveSmallIntegerField(
        "council district (later column)",
        null=True,
        blank=True,
        help_text="Added to the dataset later; appears to repeat the council district.",
    )
    census_tract = models.CharField(
        max_length=10, blank=True, help_text="Tract number, e.g. 739 or 376.02 (a code)."
    )
    bin = models.IntegerField(
        "building ID (BIN)", null=True, blank=True, help_text="Building Identification Number."
    )
    bbl = models.BigIntegerField(
        "borough, block and lot (BBL)",
        null=True,
        blank=True,
        help_text="Borough digit, 5-digit block and 4-digit lot.",
    )
    socrata_id = models.CharField(
        "Socrata row ID", max_length=40, blank=True, help_text="The row's ID on the portal."
    )
    socrata_updated_at = models.DateTimeField(
        "updated on Socrata",
        null=True,
        blank=True,
        help_text="When the portal last changed the row; incremental syncs start from here.",
    )

    class Meta:
        ordering = ["tree_id"]
        # One index per filter the API offers, and no more: each one is maintained on every
        # write and rebuilt after a first load, so each must earn its place. Measured with
        # EXPLAIN ANALYZE and bench_api.py on the 683,788-row census. Lists page by tree_id
        # (the primary key): for one filter on a few large groups (health, status) walking
        # the key and testing each row finds 50 trees in well under a millisecond.
        indexes = [
            # Many values, some rare: walk them in key order.
            models.Index(fields=["zipcode", "tree_id"], name="tree_zipcode_idx"),
            models.Index(fields=["species", "tree_id"], name="tree_species_idx"),
            # Borough and health together ("sick trees in my borough"), in key order: a rare
            # pair (Bronx and Poor, 0.5%) takes 0.1 ms instead of 2.6 ms; in bench_api.py
            # 462 instead of 351 requests/s, p95 13 instead of 20 ms.
            models.Index(fields=["borough", "health", "tree_id"], name="tree_borough_health_idx"),
            # Few values, in key order: a rare one (Dead, Poor) with a second filter walks
            # only its own trees. Alone on (status), `status=Dead&species=...` (no dead tree
            # has a species) walked the whole key: 1 s instead of 0.1 s (issue 11's
            # filters_two; the planner takes the two as independent).
            models.Index(fields=["health", "tree_id"], name="tree_health_idx"),
            models.Index(fields=["status", "tree_id"], name="tree_status_idx"),
            # Many values, each rare (an NTA is 0.5% of the trees, a tract a few trees):
            # `nta=BX29&root_stone=Yes` 0.6 s walking the key, a few ms here.
            models.Index(fields=["nta", "tree_id"], name="tree_nta_idx"),
            models.Index(fields=["census_tract", "tree_id"], name="tree_census_tract_idx"),
            models.Index(fields=["community_board", "tree_id"], name="tree_community_board_idx"),
            models.Index(fields=["council_district", "tree_id"], name="tree_council_idx"),
            # Rare values of common columns (1-4% of the trees) and the problem flags' Yes
            # (3-10%), partial so each holds only those trees: two such filters together
            # (`steward=4orMore&brch_shoe=Yes`, 0.03%) walk one of them, not the key.
            *(
                models.Index(fields=["tree_id"], condition=condition, name=name)
                for name, condition in RARE_VALUE_INDEXES
            ),
            # `problem=` (part of the problem list): trigrams, as for addresses.
            GinIndex(
                OpClass(Upper("problems"), name="gin_trgm_ops"),
                name="tree_problems_trgm_idx",
            ),
            # The orderings of trees/ (trees.keyset): each a range of (value, tree_id), so a
            # deep page costs what the first does. Read backwards for descending orders. The
            # diameter one also serves dbh_min/dbh_max, as (tree_dbh) alone did; the species
            # order reads tree_species_idx.
            models.Index(fields=["tree_dbh", "tree_id"], name="tree_dbh_order_idx"),
            models.Index(fields=["surveyed_on", "tree_id"], name="tree_surveyed_order_idx"),
            # bbox and `near` read the GiST index on the PostGIS point (migration 0008_postgis,
            # not declared here: the point is not a model field).
            # The stats count trees per (borough, status, health, species, diameter); this
            # index returns them in that order, so Postgres counts in one pass over ~8 MB
            # without reading table rows: ~150 ms instead of ~500 ms. Led by borough, it is
            # also the borough filter's index.
            models.Index(
                fields=["borough", "status", "health", "species", "tree_dbh"],
                name="tree_stats_idx",
            ),
            # Substring search on addresses (the admin's search box): trigrams.
            GinIndex(
                OpClass(Upper("address"), name="gin_trgm_ops"),
                name="tree_address_trgm_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(latitude__gte=40.4, latitude__lte=41.0)
                & models.Q(longitude__gte=-74.3, longitude__lte=-73.6),
                name="tree_location_in_new_york",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="tree_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(borough__in=Borough.values), name="tree_borough_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(health__in=[*Health.values, ""]),
                name="tree_health_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Tree {self.tree_id}"


class TreeCount(models.Model):
    """How many trees share each (borough, status, health, species, diameter): ~50k rows.

    The stats endpoint sums these instead of counting 683,788 trees when its filters are on
    these columns only (queries.tree_stats). Database triggers on the tree table keep the
    counts exact in the same transaction as every insert, update, delete or truncate, whoever
    makes it (sync, admin, shell; migration 0003). A count can reach 0 and stay.
    """

    borough = models.CharField(max_length=13, choices=Borough)
    status = models.CharField(max_length=5, choices=Status)
    health = models.CharField(max_length=4, choices=Health, blank=True)
    # No foreign key constraint: the trigger writes here whatever the tree row says, and the
    # tree table's own constraint already holds the species to exist.
    species = models.ForeignKey(
        Species, on_delete=models.DO_NOTHING, null=True, db_constraint=False, related_name="+"
    )
    tree_dbh = models.PositiveSmallIntegerField(null=True)
    count = models.IntegerField()

    class Meta:
        constraints = [
            # The triggers' upsert target: one row per combination, NULLs included.
            models.UniqueConstraint(
                fields=["borough", "status", "health", "species", "tree_dbh"],
                nulls_distinct=False,
                name="treecount_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} trees: {self.borough}, {self.status}, {self.health or '-'}"


class TreeGroupCount(models.Model):
    """How many trees share each value of one of COLUMNS and diameter, how many of them are in
    Poor health and how many have their health recorded: ~40k rows.

    `groups/` grouped by one of these columns (and filtered on diameter at most)
    sums one column's rows instead of reading 683,788 trees (queries.tree_groups): reading a
    column that far along each tree row is most of that query's cost. Kept exact in the same
    transaction as every write by statement-level triggers on the tree table, as TreeCount
    is (migration 0006_perf_group_counts); a first load counts them itself (trees.loader).
    A count can reach 0 and stay.
    """

    # The tree columns counted here: the group columns TreeCount does not count by. Their
    # values are stored as text (`council_district` 33 as '33'), NULL for a missing number.
    COLUMNS = (
        "nta",
        "zipcode",
        "steward",
        "guards",
        "curb_loc",
        "sidewalk",
        "user_type",
        "council_district",
        "community_board",
    )
    NUMERIC_COLUMNS = frozenset({"council_district", "community_board"})

    column_name = models.CharField(max_length=16)
    # NULL is a missing number, '' a missing text value: two values, as the trees have them.
    value = models.TextField(null=True)  # noqa: DJ001
    tree_dbh = models.PositiveSmallIntegerField(null=True)
    count = models.IntegerField()
    poor = models.IntegerField()  # of them in Poor health
    recorded = models.IntegerField()  # of them with a health (dead trees and stumps have none)

    class Meta:
        constraints = [
            # The triggers' upsert target, and the index one column's rows are read by.
            models.UniqueConstraint(
                fields=["column_name", "value", "tree_dbh"],
                nulls_distinct=False,
                name="treegroupcount_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} trees: {self.column_name}={self.value}, {self.tree_dbh} in"


class SyncRun(models.Model):
    """One run of `sync_trees`: what it fetched, what it changed, and how it ended."""

    class Mode(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    dataset = models.CharField(max_length=20)
    source = models.CharField(
        max_length=500, blank=True, help_text="URL or file read; never shows the app token."
    )
    mode = models.CharField(max_length=11, choices=Mode)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=9, choices=Status, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_fetched = models.PositiveIntegerField(default=0)
    rows_inserted = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_deleted = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rejection_samples = models.JSONField(
        default=list, blank=True, help_text="Up to a few dozen rejected rows and why."
    )
    warnings = models.JSONField(
        default=list, blank=True, help_text="What the run noticed but could live with."
    )
    watermark = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The newest portal update time among the rows this run stored.",
    )
    error_message = models.TextField(blank=True)
    backend_pid = models.IntegerField(
        "Postgres backend PID",
        null=True,
        blank=True,
        help_text="Postgres backend of the process holding the sync lock for this run; "
        "lets a refused run name the run it waited for.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["dataset", "status", "-started_at"])]

    def __str__(self) -> str:
        started = timezone.localtime(self.started_at)  # TIME_ZONE, as the admin shows times
        return f"{self.get_mode_display()} sync of {self.dataset} at {started:%Y-%m-%d %H:%M %Z}"

    @property
    def duration(self):
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def microseconds_now() -> int:
    return time.time_ns() // 1000


class DataVersion(models.Model):
    """A single row whose number changes with the census data; the API's cache keys carry it.

    The sync raises it in the same transaction as the rows it changes, so the number in
    Postgres always matches the data; the API reads it from here on every cacheable request
    (trees.cache). changed_at (the responses' Last-Modified) moves on by a second at least.
    Numbers are at least the time in microseconds, so a database created anew, or restored
    from a backup and then changed, never reuses a number that may still name cached
    responses of other data.
    """

    SINGLETON_PK = 1

    version = models.BigIntegerField(default=microseconds_now)
    changed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"data version {self.version}"

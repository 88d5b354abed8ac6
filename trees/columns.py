"""How the 2015 census's SODA columns map onto `Tree`: one declarative table.

Each entry names the Tree field, every name Socrata has used for the column (the API's
names, the disputed alternatives, the bulk CSV download's display names; see
../shared/SOCRATA.md), and the kind of value it holds. The loader turns this table into
SQL; nothing else in the project knows SODA's column names.
"""

from dataclasses import dataclass
from enum import StrEnum

from trees.models import (
    Borough,
    CurbLocation,
    Guards,
    Health,
    Sidewalk,
    Species,
    Status,
    Steward,
    Tree,
    UserType,
)


class Kind(StrEnum):
    BIGINT = "bigint"
    INTEGER = "integer"
    SMALLINT = "smallint"  # non-negative, as the census's counts, codes and diameters are
    FLOAT = "float"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"  # Yes / No
    CHOICE = "choice"  # a closed domain
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    field: str  # the Tree field (or species part) it fills
    sources: tuple[str, ...]  # SODA names, preferred first
    kind: Kind
    required: bool = False  # a run whose pages lack every source name fails
    choices: tuple[str, ...] = ()

    @property
    def max_length(self) -> int | None:
        """The longest text the target column takes (None: any length, or not text)."""
        if self.kind not in (Kind.TEXT, Kind.CHOICE):
            return None
        if self.field in SPECIES_FIELDS:
            return Species._meta.get_field(SPECIES_FIELDS[self.field]).max_length
        return Tree._meta.get_field(self.field).max_length


def _choice(field: str, sources: tuple[str, ...], choices, required: bool = False) -> Column:
    return Column(field, sources, Kind.CHOICE, required=required, choices=tuple(choices.values))


COLUMNS: tuple[Column, ...] = (
    Column("tree_id", ("tree_id",), Kind.BIGINT, required=True),
    Column("block_id", ("block_id",), Kind.INTEGER),
    Column("surveyed_on", ("created_at",), Kind.DATE),
    Column("tree_dbh", ("tree_dbh",), Kind.SMALLINT),
    Column("stump_diam", ("stump_diam",), Kind.SMALLINT),
    _choice("curb_loc", ("curb_loc",), CurbLocation),
    _choice("status", ("status",), Status, required=True),
    _choice("health", ("health",), Health),
    Column("spc_latin", ("spc_latin",), Kind.TEXT),
    Column("spc_common", ("spc_common",), Kind.TEXT),
    _choice("steward", ("steward",), Steward),
    _choice("guards", ("guards",), Guards),
    _choice("sidewalk", ("sidewalk",), Sidewalk),
    _choice("user_type", ("user_type",), UserType),
    Column("problems", ("problems",), Kind.TEXT),
    Column("root_stone", ("root_stone",), Kind.BOOLEAN),
    Column("root_grate", ("root_grate",), Kind.BOOLEAN),
    Column("root_other", ("root_other",), Kind.BOOLEAN),
    # The 5rq2-4hqu export truncates some of these names; the API spells them so.
    Column("trunk_wire", ("trunk_wire", "trnk_wire"), Kind.BOOLEAN),
    Column("trnk_light", ("trnk_light",), Kind.BOOLEAN),
    Column("trnk_other", ("trnk_other",), Kind.BOOLEAN),
    Column("brch_light", ("brch_light", "brnch_ligh"), Kind.BOOLEAN),
    Column("brch_shoe", ("brch_shoe", "brnch_shoe"), Kind.BOOLEAN),
    Column("brch_other", ("brch_other", "brnch_othe"), Kind.BOOLEAN),
    Column("address", ("address",), Kind.TEXT),
    Column("zipcode", ("zipcode", "postcode"), Kind.TEXT),
    Column("zip_city", ("zip_city",), Kind.TEXT),
    Column("community_board", ("cb_num", "community_board", "community board"), Kind.SMALLINT),
    Column("borocode", ("borocode",), Kind.SMALLINT),
    # Required in effect: a row needs a borough name, or a borocode to derive it from.
    _choice("borough", ("boroname", "borough"), Borough),
    Column("cncldist", ("cncldist",), Kind.SMALLINT),
    Column("st_assem", ("st_assem",), Kind.SMALLINT),
    Column("st_senate", ("st_senate",), Kind.SMALLINT),
    Column("nta", ("nta",), Kind.TEXT),
    Column("nta_name", ("nta_name",), Kind.TEXT),
    Column("boro_ct", ("boro_ct",), Kind.INTEGER),
    Column("state", ("state",), Kind.TEXT),
    Column("latitude", ("latitude",), Kind.FLOAT, required=True),
    Column("longitude", ("longitude",), Kind.FLOAT, required=True),
    Column("x_sp", ("x_sp",), Kind.FLOAT),
    Column("y_sp", ("y_sp",), Kind.FLOAT),
    Column("council_district", ("council_district", "council district"), Kind.SMALLINT),
    Column("census_tract", ("census_tract", "census tract"), Kind.TEXT),
    Column("bin", ("bin",), Kind.INTEGER),
    Column("bbl", ("bbl",), Kind.BIGINT),
    Column("socrata_id", (":id",), Kind.TEXT),
    Column("socrata_updated_at", (":updated_at",), Kind.TIMESTAMP),
)

# Socrata's other system fields, and names we know and deliberately drop (no warning).
IGNORED_SOURCES = frozenset({":created_at", ":version", "the_geom", "location", "objectid"})

# Fields that are not Tree columns: they become the species reference.
SPECIES_FIELDS = {"spc_latin": "latin_name", "spc_common": "common_name"}

# New York City with a margin; a tree outside it is a data error.
LATITUDE_RANGE = (40.4, 41.0)
LONGITUDE_RANGE = (-74.3, -73.6)

BOROUGH_BY_CODE = {
    1: Borough.MANHATTAN,
    2: Borough.BRONX,
    3: Borough.BROOKLYN,
    4: Borough.QUEENS,
    5: Borough.STATEN_ISLAND,
}


@dataclass(frozen=True)
class ColumnMap:
    """Which SODA name feeds which field, for one set of page headers."""

    sources: dict[str, str]  # field -> the SODA name found in the headers
    unknown: tuple[str, ...]  # header names we do not know (ignored, with a warning)
    missing: tuple[str, ...]  # fields none of whose names appear (stored empty)
    missing_required: tuple[str, ...]  # the same, for fields a row cannot do without


def map_headers(headers: tuple[str, ...] | list[str]) -> ColumnMap:
    """Match a page's column names against COLUMNS, accepting either name of a disputed pair."""
    present = {name.strip().lower(): name for name in headers}
    sources: dict[str, str] = {}
    for column in COLUMNS:
        for candidate in column.sources:
            if candidate in present:
                sources[column.field] = present[candidate]
                break
    used = set(sources.values())
    known = {name for column in COLUMNS for name in column.sources} | IGNORED_SOURCES
    unknown = tuple(
        name
        for name in headers
        if name not in used
        and name.strip().lower() not in known
        and not name.startswith(":@computed_region")
    )
    missing = tuple(column.field for column in COLUMNS if column.field not in sources)
    missing_required = tuple(
        column.field for column in COLUMNS if column.required and column.field not in sources
    )
    if "borough" not in sources and "borocode" not in sources:
        missing_required += ("borough",)
    return ColumnMap(sources, unknown, missing, missing_required)

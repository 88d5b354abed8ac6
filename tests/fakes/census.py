"""Generated, census-like rows for the fake SODA server: deterministic and never all in memory.

Every row is a pure function of `(seed, index)`: a `random.Random` seeded with both draws its
values, so the server can rebuild any row on demand instead of holding 683,788 dicts
(gigabytes). The domains follow ../shared/SOCRATA.md: ~97% Alive, 2% Dead, 1% Stump; Dead
and Stump rows have no health, species, steward, guards or sidewalk; species are mixed case
as in 2015; each borough has its own code, ZIP codes, community boards, districts, NTAs and a
rough bounding box for the coordinates. Values are strings, as SODA sends them; a missing
value is a missing key.

The row key (`tree_id`) and the system fields are cheap functions of the index
(`tree_id_of`, `row_id_number`, ...), so the server can filter and sort all rows without
generating them.
"""

import bisect
import itertools
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

#: The 45 fields of `uvpi-gqnh`, in the API's order, with their Socrata types.
FIELD_TYPES: dict[str, str] = {
    "tree_id": "number",
    "block_id": "number",
    "created_at": "calendar_date",
    "tree_dbh": "number",
    "stump_diam": "number",
    "curb_loc": "text",
    "status": "text",
    "health": "text",
    "spc_latin": "text",
    "spc_common": "text",
    "steward": "text",
    "guards": "text",
    "sidewalk": "text",
    "user_type": "text",
    "problems": "text",
    "root_stone": "text",
    "root_grate": "text",
    "root_other": "text",
    "trunk_wire": "text",
    "trnk_light": "text",
    "trnk_other": "text",
    "brch_light": "text",
    "brch_shoe": "text",
    "brch_other": "text",
    "address": "text",
    "zipcode": "number",
    "zip_city": "text",
    "cb_num": "number",
    "borocode": "number",
    "boroname": "text",
    "cncldist": "number",
    "st_assem": "number",
    "st_senate": "number",
    "nta": "text",
    "nta_name": "text",
    "boro_ct": "number",
    "state": "text",
    "latitude": "number",
    "longitude": "number",
    "x_sp": "number",
    "y_sp": "number",
    "council_district": "number",
    "census_tract": "number",
    "bin": "number",
    "bbl": "number",
}
FIELDS: tuple[str, ...] = tuple(FIELD_TYPES)

#: Columns that Dead and Stump rows leave out.
LIVING_ONLY = ("health", "spc_latin", "spc_common", "steward", "guards", "sidewalk")

#: The nine Yes/No problem flags and the name each contributes to `problems`.
PROBLEM_FLAGS: dict[str, tuple[str, float]] = {
    "root_stone": ("Stones", 0.20),
    "root_grate": ("MetalGrates", 0.02),
    "root_other": ("RootOther", 0.04),
    "trunk_wire": ("WiresRope", 0.02),
    "trnk_light": ("TrunkLights", 0.002),
    "trnk_other": ("TrunkOther", 0.05),
    "brch_light": ("BranchLights", 0.09),
    "brch_shoe": ("Sneakers", 0.001),
    "brch_other": ("BranchOther", 0.04),
}

#: (latin, common, relative frequency). The big ones carry roughly their 2015 counts.
SPECIES: tuple[tuple[str, str, int], ...] = (
    ("Platanus x acerifolia", "London planetree", 87014),
    ("Gleditsia triacanthos var. inermis", "honeylocust", 64264),
    ("Pyrus calleryana", "Callery pear", 58931),
    ("Quercus palustris", "pin oak", 53185),
    ("Acer platanoides", "Norway maple", 34189),
    ("Tilia cordata", "littleleaf linden", 29742),
    ("Prunus", "cherry", 29279),
    ("Zelkova serrata", "Japanese zelkova", 29258),
    ("Ginkgo biloba", "ginkgo", 21024),
    ("Styphnolobium japonicum", "Sophora", 19338),
    ("Acer rubrum", "red maple", 17246),
    ("Fraxinus pennsylvanica", "green ash", 16251),
    ("Tilia americana", "American linden", 13530),
    ("Acer saccharinum", "silver maple", 12277),
    ("Liquidambar styraciflua", "sweetgum", 10657),
    ("Quercus rubra", "northern red oak", 8400),
    ("Ulmus americana", "American elm", 7975),
    ("Malus", "crab apple", 7974),
    ("Quercus bicolor", "swamp white oak", 7971),
    ("Quercus phellos", "willow oak", 7207),
    ("Ulmus parvifolia", "Chinese elm", 6200),
    ("Acer", "maple", 5000),
    ("Cercis canadensis", "eastern redbud", 4800),
    ("Syringa reticulata", "Japanese tree lilac", 4600),
    ("Acer platanoides 'Crimson King'", "crimson king maple", 4200),
    ("Tilia tomentosa", "silver linden", 4000),
    ("Acer campestre", "hedge maple", 3900),
    ("Robinia pseudoacacia", "black locust", 3600),
    ("Gymnocladus dioicus", "Kentucky coffeetree", 3300),
    ("Acer pseudoplatanus", "sycamore maple", 3200),
    ("Ailanthus altissima", "tree of heaven", 3000),
    ("Fraxinus americana", "white ash", 2900),
    ("Acer ginnala", "Amur maple", 2800),
    ("Ulmus pumila", "Siberian elm", 2600),
    ("Morus", "mulberry", 2500),
    ("Prunus serotina", "black cherry", 2400),
    ("Corylus colurna", "Turkish hazelnut", 2300),
    ("Quercus acutissima", "sawtooth oak", 2200),
    ("Prunus virginiana", "'Schubert' chokecherry", 2100),
    ("Prunus cerasifera", "purple-leaf plum", 2000),
    ("Koelreuteria paniculata", "golden raintree", 1900),
    ("Crataegus", "hawthorn", 1800),
    ("Chionanthus retusus", "Chinese fringetree", 1700),
    ("Amelanchier", "serviceberry", 1600),
    ("Acer palmatum", "Japanese maple", 1500),
    ("Phellodendron amurense", "Amur cork tree", 1400),
    ("Aesculus glabra", "Ohio buckeye", 1300),
    ("Aesculus hippocastanum", "horse chestnut", 1250),
    ("Eucommia ulmoides", "hardy rubber tree", 1200),
    ("Carpinus caroliniana", "American hornbeam", 1150),
    ("Carpinus betulus", "European hornbeam", 1100),
    ("Liriodendron tulipifera", "tulip-poplar", 1050),
    ("Juglans nigra", "black walnut", 1000),
    ("Populus deltoides", "eastern cottonwood", 950),
    ("Quercus velutina", "black oak", 900),
    ("Quercus alba", "white oak", 880),
    ("Quercus coccinea", "scarlet oak", 860),
    ("Quercus imbricaria", "shingle oak", 840),
    ("Quercus robur", "English oak", 820),
    ("Quercus macrocarpa", "bur oak", 800),
    ("Quercus falcata", "southern red oak", 780),
    ("Castanea mollissima", "Chinese chestnut", 760),
    ("Styrax japonicus", "Japanese snowbell", 740),
    ("Cornus kousa", "kousa dogwood", 720),
    ("Cornus florida", "flowering dogwood", 700),
    ("Cercidiphyllum japonicum", "katsura tree", 680),
    ("Metasequoia glyptostroboides", "dawn redwood", 660),
    ("Taxodium distichum", "bald cypress", 640),
    ("Juniperus virginiana", "eastern redcedar", 620),
    ("Pinus sylvestris", "Scots pine", 600),
    ("Pinus strobus", "eastern white pine", 580),
    ("Pinus nigra", "Austrian pine", 560),
    ("Pinus thunbergii", "Japanese black pine", 540),
    ("Picea pungens", "blue spruce", 520),
    ("Picea abies", "Norway spruce", 500),
    ("Pseudotsuga menziesii", "Douglas-fir", 480),
    ("Cedrus atlantica", "Atlas cedar", 460),
    ("Larix laricina", "American larch", 440),
    ("Pinus rigida", "pitch pine", 420),
    ("Pinus virginiana", "Virginia pine", 400),
    ("Sassafras albidum", "sassafras", 390),
    ("Nyssa sylvatica", "black tupelo", 380),
    ("Diospyros virginiana", "persimmon", 370),
    ("Cornus alternifolia", "pagoda dogwood", 360),
    ("Acer buergerianum", "trident maple", 350),
    ("Acer griseum", "paperbark maple", 340),
    ("Acer negundo", "boxelder", 330),
    ("Acer saccharum", "sugar maple", 320),
    ("Acer x freemanii", "Freeman maple", 310),
    ("Cornus mas", "Cornelian cherry", 300),
    ("Ostrya virginiana", "American hophornbeam", 290),
    ("Betula nigra", "river birch", 280),
    ("Betula populifolia", "gray birch", 270),
    ("Betula papyrifera", "paper birch", 260),
    ("Fagus sylvatica", "European beech", 250),
    ("Fagus grandifolia", "American beech", 240),
    ("Maclura pomifera", "Osage-orange", 230),
    ("Catalpa", "catalpa", 220),
    ("Paulownia tomentosa", "empress tree", 210),
    ("Acer nigrum", "black maple", 200),
    ("Acer truncatum", "Shantung maple", 190),
    ("Cedrus deodara", "deodar cedar", 180),
    ("Halesia diptera", "two-winged silverbell", 170),
    ("Carpinus japonica", "Japanese hornbeam", 160),
    ("Taxodium ascendens", "pond cypress", 150),
    ("Syringa pekinensis", "Chinese tree lilac", 140),
    ("Alnus glutinosa", "black alder", 130),
    ("Salix babylonica", "weeping willow", 120),
    ("Salix nigra", "black willow", 110),
    ("Populus tremuloides", "quaking aspen", 100),
    ("Populus grandidentata", "bigtooth aspen", 95),
    ("Magnolia grandiflora", "southern magnolia", 90),
    ("Magnolia", "magnolia", 85),
    ("Magnolia acuminata", "cucumber magnolia", 80),
    ("Albizia julibrissin", "mimosa", 75),
    ("Lagerstroemia", "crepe myrtle", 70),
    ("Cotinus coggygria", "smoketree", 65),
    ("Oxydendrum arboreum", "sourwood", 60),
    ("Celtis occidentalis", "hackberry", 55),
    ("Platanus occidentalis", "American sycamore", 50),
    ("Quercus shumardii", "Shumard's oak", 48),
    ("Quercus montana", "chestnut oak", 46),
    ("Quercus muehlenbergii", "chinkapin oak", 44),
    ("Quercus cerris", "Turkey oak", 42),
    ("Carya glabra", "pignut hickory", 40),
    ("Carya ovata", "shagbark hickory", 38),
    ("Aesculus x carnea", "red horse chestnut", 36),
    ("Ilex opaca", "American holly", 34),
    ("Tsuga canadensis", "eastern hemlock", 32),
    ("Pinus", "pine", 30),
    ("Ulmus", "elm", 28),
)


@dataclass(frozen=True)
class Borough:
    code: int
    name: str
    trees: int  # its share of the 2015 census, used as a weight
    lat: tuple[float, float]
    lon: tuple[float, float]
    zips: tuple[tuple[str, str], ...]  # (ZIP code, zip_city)
    boards: int  # community boards 1..boards
    council: tuple[int, int]
    assembly: tuple[int, int]
    senate: tuple[int, int]
    ntas: tuple[tuple[str, str], ...]
    streets: tuple[str, ...]


# fmt: off
BOROUGHS: tuple[Borough, ...] = (
    Borough(
        1, "Manhattan", 65423, (40.70, 40.88), (-74.02, -73.91),
        tuple((z, "New York") for z in ("10001", "10002", "10003", "10009", "10011", "10014",
                                        "10016", "10021", "10024", "10025", "10027", "10031",
                                        "10032", "10034", "10040", "83")),
        12, (1, 10), (65, 76), (26, 31),
        (("MN12", "Upper West Side"), ("MN40", "Upper East Side-Carnegie Hill"),
         ("MN23", "West Village"), ("MN22", "East Village"),
         ("MN35", "Washington Heights North"), ("MN03", "Central Harlem North-Polo Grounds"),
         ("MN17", "Midtown-Midtown South"),
         ("MN24", "SoHo-TriBeCa-Civic Center-Little Italy")),
        ("BROADWAY", "AMSTERDAM AVENUE", "WEST 96 STREET", "EAST 14 STREET", "LENOX AVENUE",
         "RIVERSIDE DRIVE"),
    ),
    Borough(
        2, "Bronx", 85203, (40.80, 40.90), (-73.92, -73.78),
        tuple((z, "Bronx") for z in ("10451", "10452", "10453", "10456", "10458", "10461",
                                     "10462", "10463", "10465", "10466", "10467", "10469",
                                     "10471", "10473", "10475")),
        12, (11, 18), (77, 87), (32, 36),
        (("BX05", "Bedford Park-Fordham North"),
         ("BX09", "Soundview-Castle Hill-Clason Point-Harding Park"),
         ("BX22", "North Riverdale-Fieldston-Riverdale"), ("BX28", "Van Cortlandt Village"),
         ("BX40", "Fordham South"), ("BX62", "Woodlawn-Wakefield"),
         ("BX49", "Pelham Parkway"), ("BX13", "Co-op City")),
        ("GRAND CONCOURSE", "PELHAM PARKWAY", "WHITE PLAINS ROAD", "EAST 233 STREET",
         "BRUCKNER BOULEVARD", "MOSHOLU PARKWAY"),
    ),
    Borough(
        3, "Brooklyn", 177293, (40.58, 40.73), (-74.03, -73.87),
        tuple((z, "Brooklyn") for z in ("11201", "11203", "11204", "11205", "11209", "11211",
                                        "11215", "11218", "11220", "11223", "11226", "11229",
                                        "11234", "11235", "11236", "11238")),
        18, (33, 48), (41, 60), (17, 27),
        (("BK09", "Brooklyn Heights-Cobble Hill"), ("BK37", "Park Slope-Gowanus"),
         ("BK90", "East Williamsburg"), ("BK75", "Bedford"), ("BK50", "Canarsie"),
         ("BK17", "Sheepshead Bay-Gerritsen Beach-Manhattan Beach"), ("BK31", "Bay Ridge"),
         ("BK60", "Prospect Lefferts Gardens-Wingate")),
        ("ATLANTIC AVENUE", "OCEAN PARKWAY", "BEDFORD AVENUE", "EASTERN PARKWAY",
         "FLATBUSH AVENUE", "86 STREET"),
    ),
    Borough(
        4, "Queens", 250551, (40.55, 40.79), (-73.95, -73.71),
        (("11375", "Forest Hills"), ("11354", "Flushing"), ("11355", "Flushing"),
         ("11432", "Jamaica"), ("11101", "Long Island City"), ("11103", "Astoria"),
         ("11105", "Astoria"), ("11372", "Jackson Heights"), ("11385", "Ridgewood"),
         ("11361", "Bayside"), ("11364", "Oakland Gardens"), ("11419", "South Richmond Hill"),
         ("11691", "Far Rockaway"), ("11357", "Whitestone")),
        14, (19, 32), (23, 40), (10, 16),
        (("QN17", "Forest Hills"), ("QN22", "Flushing"), ("QN70", "Astoria"),
         ("QN28", "Jackson Heights"), ("QN20", "Ridgewood"),
         ("QN46", "Bayside-Bayside Hills"), ("QN61", "Jamaica"),
         ("QN15", "Far Rockaway-Bayswater")),
        ("70 AVENUE", "QUEENS BOULEVARD", "NORTHERN BOULEVARD", "164 STREET", "37 AVENUE",
         "HILLSIDE AVENUE"),
    ),
    Borough(
        5, "Staten Island", 105318, (40.51, 40.64), (-74.24, -74.06),
        tuple((z, "Staten Island") for z in ("10301", "10302", "10303", "10304", "10305",
                                             "10306", "10307", "10308", "10309", "10310",
                                             "10312", "10314")),
        3, (49, 51), (61, 64), (23, 24),
        (("SI01", "Annadale-Huguenot-Prince's Bay-Eltingville"),
         ("SI05", "New Springville-Bloomfield-Travis"), ("SI07", "Westerleigh"),
         ("SI11", "Charleston-Richmond Valley-Tottenville"),
         ("SI12", "Mariner's Harbor-Arlington-Port Ivory-Graniteville"),
         ("SI22", "West New Brighton-New Brighton-St. George"),
         ("SI24", "Todt Hill-Emerson Hill-Heartland Village-Lighthouse Hill"),
         ("SI25", "Oakwood-Oakwood Beach")),
        ("VICTORY BOULEVARD", "HYLAN BOULEVARD", "RICHMOND AVENUE", "FOREST AVENUE",
         "AMBOY ROAD", "ARTHUR KILL ROAD"),
    ),
)
# fmt: on

SURVEY_START = date(2015, 5, 19)
SURVEY_DAYS = 505  # to 2016-10-05

_STATUS = (("Alive", 0.97), ("Dead", 0.02), ("Stump", 0.01))
_HEALTH = (("Good", 0.81), ("Fair", 0.15), ("Poor", 0.04))
_STEWARD = (("None", 0.73), ("1or2", 0.21), ("3or4", 0.05), ("4orMore", 0.01))
_GUARDS = (("None", 0.86), ("Helpful", 0.10), ("Harmful", 0.03), ("Unsure", 0.01))
_SIDEWALK = (("NoDamage", 0.71), ("Damage", 0.29))
_USER_TYPE = (("TreesCount Staff", 0.44), ("Volunteer", 0.32), ("NYC Parks Staff", 0.24))


class _Choice:
    """A weighted choice from one uniform draw (cheaper than random.choices per call)."""

    def __init__(self, pairs) -> None:
        self.values = [value for value, _ in pairs]
        total = sum(weight for _, weight in pairs)
        self.cumulative = list(itertools.accumulate(weight / total for _, weight in pairs))

    def __call__(self, rng: random.Random):
        index = bisect.bisect(self.cumulative, rng.random())
        return self.values[min(index, len(self.values) - 1)]


_status = _Choice(_STATUS)
_health = _Choice(_HEALTH)
_steward = _Choice(_STEWARD)
_guards = _Choice(_GUARDS)
_sidewalk = _Choice(_SIDEWALK)
_user_type = _Choice(_USER_TYPE)
_species = _Choice([((latin, common), weight) for latin, common, weight in SPECIES])
_borough = _Choice([(borough, borough.trees) for borough in BOROUGHS])


_local = threading.local()


def _thread_rng() -> random.Random:
    """One Random per thread: the server renders rows from several handler threads."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = random.Random()
    return rng


# random.randint and random.choice cost ~1 µs each in Python; a row needs about twenty.
def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def _pick[T](rng: random.Random, values: Sequence[T]) -> T:
    return values[int(rng.random() * len(values))]


def tree_id_of(index: int) -> int:
    """Unique, increasing, with gaps (the real ids run from 3 to 722,694)."""
    return 3 + index + index // 20


def index_of_tree_id(tree_id: int) -> int | None:
    """The index whose `tree_id_of` is `tree_id`, if any."""
    guess = (tree_id - 3) * 20 // 21
    for index in (guess - 1, guess, guess + 1):
        if index >= 0 and tree_id_of(index) == tree_id:
            return index
    return None


def generate_row(seed: int, index: int) -> dict[str, str]:
    """The data fields of row `index`: SODA strings, null values left out."""
    rng = _thread_rng()
    rng.seed((seed << 32) ^ index)  # reseeding costs half of building a new Random
    borough = _borough(rng)
    status = _status(rng)
    alive = status == "Alive"
    flags = {
        flag: ("Yes" if alive and rng.random() < p else "No")
        for flag, (_, p) in PROBLEM_FLAGS.items()
    }
    problems = ",".join(PROBLEM_FLAGS[flag][0] for flag, value in flags.items() if value == "Yes")
    dbh = min(int(rng.expovariate(1 / 9)) + 1, 60)
    zipcode, zip_city = _pick(rng, borough.zips)
    nta, nta_name = _pick(rng, borough.ntas)
    council = _between(rng, *borough.council)
    tract = _between(rng, 1, 1500) * 100 + _pick(rng, (0, 0, 0, 1, 2))
    lat = rng.uniform(*borough.lat)
    lon = rng.uniform(*borough.lon)
    surveyed = SURVEY_START + timedelta(days=int(rng.random() * SURVEY_DAYS))
    if borough.name == "Queens":
        house = f"{_between(rng, 1, 250)}-{_between(rng, 1, 99):03d}"
    else:
        house = str(_between(rng, 1, 2500))
    row = {
        "tree_id": str(tree_id_of(index)),
        "block_id": str(_between(rng, 100000, 520000)),
        "created_at": f"{surveyed.isoformat()}T00:00:00.000",
        "tree_dbh": str(0 if status == "Stump" else dbh),
        "stump_diam": str(dbh if status == "Stump" else 0),
        "curb_loc": "OnCurb" if rng.random() < 0.96 else "OffsetFromCurb",
        "status": status,
    }
    if alive:
        latin, common = _species(rng)
        row.update(
            {
                "health": _health(rng),
                "spc_latin": latin,
                "spc_common": common,
                "steward": _steward(rng),
                "guards": _guards(rng),
                "sidewalk": _sidewalk(rng),
            }
        )
    row.update(
        {
            "user_type": _user_type(rng),
            "problems": problems or "None",
            **flags,
            "address": f"{house} {_pick(rng, borough.streets)}",
            "zipcode": zipcode,
            "zip_city": zip_city,
            "cb_num": str(borough.code * 100 + _between(rng, 1, borough.boards)),
            "borocode": str(borough.code),
            "boroname": borough.name,
            "cncldist": str(council),
            "st_assem": str(_between(rng, *borough.assembly)),
            "st_senate": str(_between(rng, *borough.senate)),
            "nta": nta,
            "nta_name": nta_name,
            "boro_ct": f"{borough.code}{tract:06d}",
            "state": "New York",
            "latitude": f"{lat:.8f}",
            "longitude": f"{lon:.8f}",
            # A linear stand-in for NY State Plane (feet), anchored on tree 180683.
            "x_sp": f"{1027431.148 + (lon + 73.84421522) * 276_000:.3f}",
            "y_sp": f"{202756.7687 + (lat - 40.72309177) * 364_000:.4f}",
            "council_district": str(council),
            "census_tract": f"{tract / 100:g}",
        }
    )
    if rng.random() < 0.97:
        row["bin"] = str(borough.code * 1_000_000 + _between(rng, 0, 999_999))
    if rng.random() < 0.98:
        row["bbl"] = f"{borough.code}{_between(rng, 1, 16000):05d}{_between(rng, 1, 9999):04d}"
    return row

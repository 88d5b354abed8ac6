"""A small map of a tree and its neighbours, as inline SVG: no tiles, no script, no other host.

The tree is at the centre of a square `radius` metres to each side, its neighbours around
it, with a scale bar. The projection is local and flat (metres east and north of the
tree), which at 150 m is off by far less than a pixel. Every text and link is escaped here,
so the result can be put into a page as it is.
"""

import math
from dataclasses import dataclass
from html import escape

METRES_PER_DEGREE_LATITUDE = 111_132.0
METRES_PER_DEGREE_LONGITUDE_AT_EQUATOR = 111_320.0


@dataclass(frozen=True)
class Place:
    """A tree on the map: where it is, what its tooltip says, where it links to (if anywhere)."""

    latitude: float
    longitude: float
    label: str
    href: str = ""


def offset_metres(centre: Place, place: Place) -> tuple[float, float]:
    """Metres east and north of `centre`."""
    east = (
        (place.longitude - centre.longitude)
        * METRES_PER_DEGREE_LONGITUDE_AT_EQUATOR
        * math.cos(math.radians(centre.latitude))
    )
    north = (place.latitude - centre.latitude) * METRES_PER_DEGREE_LATITUDE
    return east, north


def scale_bar_metres(radius: float) -> int:
    """A round length of about a third of the map's half-width: 10, 20, 50, 100, 200 m..."""
    target = radius / 1.5
    magnitude = 10 ** math.floor(math.log10(target))
    return int(max(step * magnitude for step in (1, 2, 5) if step * magnitude <= target))


def render(centre: Place, neighbours: list[Place], *, radius: float = 150, size: int = 320) -> str:
    """The SVG: neighbours as grey dots (each a link when it has one), the tree in green."""
    scale = size / (2 * radius)  # pixels per metre
    summary = f"{centre.label} and {len(neighbours)} trees within {radius:g} m"

    def xy(place: Place) -> tuple[float, float]:
        east, north = offset_metres(centre, place)
        return size / 2 + east * scale, size / 2 - north * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="minimap" width="{size}" '
        f'height="{size}" viewBox="0 0 {size} {size}" role="img" '
        f'aria-label="{escape(summary)}">',
        f'<rect width="{size}" height="{size}" fill="#f4f1e8" stroke="#ccc"/>',
    ]
    for place in neighbours:
        x, y = xy(place)
        dot = (
            f'<circle class="neighbour" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#8a8a8a">'
            f"<title>{escape(place.label)}</title></circle>"
        )
        if place.href:
            dot = f'<a href="{escape(place.href)}">{dot}</a>'
        parts.append(dot)
    x, y = xy(centre)
    parts.append(
        f'<circle class="tree" cx="{x:.1f}" cy="{y:.1f}" r="8" fill="#2e7d32" stroke="#fff" '
        f'stroke-width="2"><title>{escape(centre.label)}</title></circle>'
    )
    bar = scale_bar_metres(radius)
    left, bottom = 12, size - 14
    right = left + bar * scale
    parts.append(
        f'<g class="scale-bar"><path d="M{left} {bottom - 5}V{bottom}H{right:.1f}V{bottom - 5}" '
        f'fill="none" stroke="#333" stroke-width="2"/>'
        f'<text x="{left}" y="{bottom - 8}" font-size="12" fill="#333">{bar} m</text></g>'
    )
    parts.append("</svg>")
    return "".join(parts)

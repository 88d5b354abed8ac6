"""Cursor (keyset) pagination for trees: page 1,000 costs what page 1 costs, in every order.

The paging itself is trees.keyset: a page is the trees after a position (value, tree_id),
one index range, never an OFFSET. Here it meets HTTP: the `ordering`, `page_size` and
`cursor` parameters, strict (a bad `page_size` or `ordering` is a 400 naming it and listing
what is valid; a cursor no response gave is a 404), and the `next`/`previous` links.

DRF's CursorPagination positions a cursor by the first ordering field alone and tells rows
sharing its value apart by an offset (capped at 1,000), which breaks on ties: thousands of
trees share a diameter or a survey date. Its links and response shape are kept; the cursor
is this module's: base64 of `s=<ordering>&v=<value>&p=<tree_id>[&r=1]`, opaque to clients,
and checked field by field before it reaches SQL. `s` and `v` are left out for the tree_id
orders, so those cursors are DRF's own (`p=<tree_id>`), and `v` for a tree without a value.
"""

import base64
import binascii
import re
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ParameterError
from rest_framework.pagination import CursorPagination
from rest_framework.utils.urls import replace_query_param

from trees import keyset

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
MAX_CURSOR_LENGTH = 4000  # a 200-character latin name, percent-encoded UTF-8 and base64: 2,400
CURSOR_FIELDS = frozenset({"s", "v", "p", "r"})


class Cursor:
    """A decoded cursor: where the page starts, and whether it goes backwards from there."""

    __slots__ = ("backwards", "position")

    def __init__(self, position: keyset.Position, backwards: bool) -> None:
        self.position = position
        self.backwards = backwards


class TreeCursorPagination(CursorPagination):
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"
    orderings = keyset.ORDERS
    query_parameters = ("cursor", "page_size", "ordering")
    invalid_cursor = "Invalid cursor: use the `next` or `previous` link of a response."

    def get_page_size(self, request) -> int:
        return self._page_size(request.query_params)

    def _page_size(self, params: QueryDict) -> int:
        raw = params.get(self.page_size_query_param, "")
        if raw == "":
            return settings.API_PAGE_SIZE
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= settings.API_MAX_PAGE_SIZE:
            raise ParameterError(
                {"page_size": [f"Must be a whole number from 1 to {settings.API_MAX_PAGE_SIZE}."]}
            )
        return size

    def _ordering_name(self, params: QueryDict) -> str:
        name = params.get(self.ordering_query_param) or "tree_id"
        if name not in self.orderings:
            raise ParameterError({"ordering": [f"Must be one of: {', '.join(self.orderings)}."]})
        return name

    def cleaned_parameters(self, params: QueryDict) -> dict[str, object]:
        """The paging parameters as this paginator reads them, for the response cache's key.

        The cursor stays as given: it is opaque, and one that no response gave is a 404,
        which is never cached. Raises ParameterError where the view would answer 400.
        """
        cleaned: dict[str, object] = {}
        if self.page_size_query_param in params:
            cleaned["page_size"] = self._page_size(params)
        if self.ordering_query_param in params:
            cleaned["ordering"] = self._ordering_name(params)
        if self.cursor_query_param in params:
            cleaned["cursor"] = params[self.cursor_query_param]
        return cleaned

    def get_order(self, params: QueryDict, queryset) -> keyset.Order:
        order = self.orderings[self._ordering_name(params)]
        if order.name == "distance" and "distance" not in queryset.query.annotations:
            # Without `near` every distance is null: the nearest first is tree_id order.
            return self.orderings["tree_id"]
        return order

    def paginate_queryset(self, queryset, request, view=None) -> list[dict]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.order = self.get_order(request.query_params, queryset)
        cursor = self.decode_cursor(request)
        size = self.page_size
        if cursor is not None and cursor.backwards:
            rows = keyset.page(
                queryset, self.order, after=cursor.position, backwards=True, limit=size + 1
            )
            if len(rows) > size:
                self.page, self.has_previous, self.has_next = rows[1:], True, True
                self.cursor_position = cursor.position
                return self.page
            # Nothing more before it (trees were removed meanwhile, say): the first page,
            # whole, rather than a short one.
            cursor = None
        after = None if cursor is None else cursor.position
        rows = keyset.page(queryset, self.order, after=after, backwards=False, limit=size + 1)
        self.page = rows[:size]
        self.has_next = len(rows) > size
        self.has_previous = cursor is not None
        self.cursor_position = after
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        return self._link(keyset.position_of(self.page[-1], self.order), backwards=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.page:  # past the end: the trees before the position it started from
            return self._link(self.cursor_position, backwards=True)
        return self._link(keyset.position_of(self.page[0], self.order), backwards=True)

    def _link(self, position: keyset.Position, *, backwards: bool) -> str:
        return replace_query_param(
            self.base_url, self.cursor_query_param, self.encode(self.order, position, backwards)
        )

    @staticmethod
    def encode(order: keyset.Order, position: keyset.Position, backwards: bool = False) -> str:
        fields = []
        if order.column is not None:
            fields.append(("s", order.name))
            if position.value is not None:
                value = position.value
                text = value.isoformat() if hasattr(value, "isoformat") else str(value)
                fields.append(("v", repr(value) if isinstance(value, float) else text))
        fields.append(("p", str(position.tree_id)))
        if backwards:
            fields.append(("r", "1"))
        return base64.b64encode(urlencode(fields).encode()).decode("ascii")

    def decode_cursor(self, request) -> Cursor | None:
        """The cursor of the request, or None; a 404 for any cursor that no response gave.

        404 rather than 400, as DRF answers, since the schema cannot tell a valid cursor from
        any other string. Every field is checked against the order's column type before it
        reaches SQL; a cursor of another ordering is refused too.
        """
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        cursor = self._decoded(raw, self.order)
        if cursor is None:
            raise NotFound(self.invalid_cursor)
        return cursor

    @staticmethod
    def _decoded(raw: str, order: keyset.Order) -> Cursor | None:
        if len(raw) > MAX_CURSOR_LENGTH or not BASE64.fullmatch(raw):
            return None
        try:
            text = base64.b64decode(raw, validate=True).decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        fields = dict(pairs)
        if len(fields) != len(pairs) or not fields.keys() <= CURSOR_FIELDS:
            return None
        if fields.get("r", "1") != "1" or "p" not in fields:
            return None
        try:
            tree_id = int(fields["p"])
        except ValueError:
            return None
        if not BIGINT_MIN <= tree_id <= BIGINT_MAX:
            return None
        if order.column is None:
            if "s" in fields or "v" in fields:
                return None
            value = None
        else:
            if fields.get("s") != order.name:
                return None
            if "v" in fields:
                try:
                    value = order.parse(fields["v"])
                except ValueError:
                    return None
            elif order.nullable:
                value = None
            else:
                return None
        return Cursor(keyset.Position(value, tree_id), backwards="r" in fields)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Trees per page (default {settings.API_PAGE_SIZE}, "
                    f"at most {settings.API_MAX_PAGE_SIZE})."
                )
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.API_MAX_PAGE_SIZE,
                    "default": settings.API_PAGE_SIZE,
                }
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque position in the list: take it from a response's `next` or "
                    "`previous` link rather than building it. Any other value is a 404."
                )
                parameter["schema"] = {"type": "string", "minLength": 1}
        parameters.append(
            {
                "name": self.ordering_query_param,
                "required": False,
                "in": "query",
                "description": "Sort order, `-` first for descending: `tree_id` (default), "
                "`tree_dbh` (trunk diameter), `created_at` (survey date), `species` (latin "
                "name), or `distance` (nearest first, with `near`). Ties in tree_id order "
                "(descending: reversed); trees without the value (no diameter, date or "
                "species) come last either way. Paging stays exact in every order.",
                "schema": {"type": "string", "enum": list(self.orderings), "default": "tree_id"},
            }
        )
        return parameters

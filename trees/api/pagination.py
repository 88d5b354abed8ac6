"""Cursor (keyset) pagination for trees: page 1,000 costs what page 1 costs.

A page is `WHERE tree_id > <last one seen> ORDER BY tree_id LIMIT n`: one range of an index,
whatever the depth, where OFFSET would read and throw away every earlier row. DRF's cursor
pagination does this; this subclass makes it strict (a bad `page_size` or `ordering` is a
400 naming it, where DRF clamps or ignores it; a cursor no response gave is DRF's 404) and
limits the orderings to the ones keyset paging is right for.
"""

import math
import re

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ParameterError
from rest_framework.pagination import CursorPagination

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# What DRF's encode_cursor writes. Its decoder would skip any other character silently.
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class TreeCursorPagination(CursorPagination):
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"
    # DRF positions a cursor by the first ordering field alone and tells rows that share its
    # value apart by an offset capped at 1,000 rows. So that field must be unique, or nearly:
    # tree_id is the key; distances tie only for trees at the very same point. Diameter or
    # date orderings would tie by the tens of thousands and break paging.
    orderings = {
        "tree_id": ("tree_id",),
        "-tree_id": ("-tree_id",),
        "distance": ("distance", "tree_id"),
    }
    ordering = orderings["tree_id"]
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

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        ordering = self.orderings[self._ordering_name(request.query_params)]
        if ordering[0] == "distance" and "distance" not in queryset.query.annotations:
            # Without `near` every distance is null: the nearest first is tree_id order.
            return self.orderings["tree_id"]
        return ordering

    def decode_cursor(self, request):
        # A cursor no response gave names a page that does not exist: 404, as DRF answers,
        # rather than a 400, since the schema cannot tell a valid cursor from any other string.
        if not BASE64.fullmatch(request.query_params.get(self.cursor_query_param, "")):
            raise NotFound(self.invalid_cursor)
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise NotFound(self.invalid_cursor) from None
        position = None if cursor is None else cursor.position
        if position is not None and not self._valid_position(position):
            raise NotFound(self.invalid_cursor)
        return cursor

    def _valid_position(self, position: str) -> bool:
        """The position goes into the WHERE clause: it must fit the ordering column's type."""
        if self.ordering[0] == "distance":
            try:
                return math.isfinite(float(position))
            except ValueError:
                return False
        try:
            return BIGINT_MIN <= int(position) <= BIGINT_MAX
        except ValueError:
            return False

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
                "description": "`tree_id` (default) or `-tree_id`; `distance` (nearest "
                "first) with `near`.",
                "schema": {"type": "string", "enum": list(self.orderings), "default": "tree_id"},
            }
        )
        return parameters

"""`fields=a,b,c`: which keys each tree carries, on `trees/`, `trees/{id}/` and the exports.

A filter of its own FilterSets (TreeItemFilterSet for the tree views, TreeExportFilterSet for
the exports), subclasses of TreeFilterSet that only those views use: `stats/`, `groups/` and
`species/` do not take it. Being a filter, its cleaned value is part of what
normalised_query() says a request means, so the response cache keys by it.

The names are cleaned to the distinct ones in the vocabulary's own order: the keys of an
item (and the columns of an export) always come in the documented order, whatever order
they were asked in, and `fields=a,b` shares its cached response with `fields=b,a`.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter

from trees.api.filters import TreeFilterSet, documented
from trees.api.serializers import ITEM_FIELDS
from trees.export import EXPORT_COLUMNS

# Long enough for every name of either vocabulary, comma-separated, a few times over.
MAX_FIELDS_LENGTH = 2000


def fields_pattern(names: tuple[str, ...]) -> str:
    """One or more of `names`, comma-separated (repeats allowed: they change nothing)."""
    name = "|".join(names)
    return rf"^(?:{name})(?:,(?:{name}))*$"


class FieldsField(forms.CharField):
    """`a,b,c`, each one of `names`: cleaned to the tuple of those given, in `names` order."""

    def __init__(self, *, names: tuple[str, ...], **kwargs):
        self.names = names
        super().__init__(max_length=MAX_FIELDS_LENGTH, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        given = value.split(",")
        unknown = [name for name in given if name not in self.names]
        if unknown:
            shown = ", ".join(repr(name[:40]) for name in dict.fromkeys(unknown))
            raise ValidationError(
                f"Unknown field(s): {shown}. Valid fields: {', '.join(self.names)}."
            )
        wanted = set(given)
        return tuple(name for name in self.names if name in wanted)


class FieldsFilter(filters.Filter):
    """Selects keys, not trees: the view reads its value (selected_fields)."""

    field_class = FieldsField

    def filter(self, qs, value):
        return qs


def fields_schema(names: tuple[str, ...]) -> dict:
    return {"type": "string", "pattern": fields_pattern(names), "maxLength": MAX_FIELDS_LENGTH}


def fields_description(names: tuple[str, ...], description: str) -> str:
    return (
        f"{description} Comma-separated, any of: `{'`, `'.join(names)}`. "
        "Keys come in this order whatever order they are given in."
    )


def fields_filter(names: tuple[str, ...], description: str) -> FieldsFilter:
    return documented(
        FieldsFilter(names=names),
        **fields_schema(names),
        description=fields_description(names, description),
    )


ITEM_FIELDS_HELP = (
    "Only these keys in each tree (GeoJSON: in its `properties`; a Feature keeps its `id` "
    "and geometry). Any stored column may be asked for, on lists too; `distance` is null "
    "without `near`. Default: all of a detail's keys, a list's usual ones."
)
# drf-spectacular documents filters on list operations only: the detail's, by hand.
ITEM_FIELDS_PARAMETER = OpenApiParameter(
    "fields",
    fields_schema(ITEM_FIELDS),
    description=fields_description(ITEM_FIELDS, ITEM_FIELDS_HELP),
)


class SelectsFields:
    """What a FilterSet with a `fields` filter offers its view."""

    base_filters: dict

    @classmethod
    def selected_fields(cls, params: QueryDict) -> tuple[str, ...] | None:
        """`fields` as validated (None: not given); for a request already let through."""
        form_class = cls.__dict__.get("_form_class") or cls().get_form_class()
        return form_class.base_fields["fields"].clean(params.get("fields"))


class TreeItemFilterSet(SelectsFields, TreeFilterSet):
    """The filters of `trees/`, and `fields`: the keys of each tree shown."""

    fields = fields_filter(ITEM_FIELDS, ITEM_FIELDS_HELP)

    class Meta(TreeFilterSet.Meta):
        pass


class TreeExportFilterSet(SelectsFields, TreeFilterSet):
    """The filters of `trees/`, and `fields`: the columns of an export."""

    fields = fields_filter(
        EXPORT_COLUMNS,
        "Only these columns (CSV) or properties (GeoJSON, whose Features keep their `id` and "
        "geometry). Default: all of them.",
    )

    class Meta(TreeFilterSet.Meta):
        pass

"""Query parameters of the API: parsing and validation, so that a bad one is a 400 naming it.

django-filter validates every parameter through a Django form field before any query runs;
its DRF backend turns a failed validation into a 400 whose body is keyed by parameter name.
The geographic parameters get their own form fields (BBoxField, PointField) and the queries
themselves live in trees.queries.

One meaning per query: a categorical filter given more than once means any of its values
(`borough=Bronx&borough=Queens`, OR; AnyOfFilter), and any other parameter given more than
once is a 400 naming it. Categorical values match ignoring case and clean to the census's
own spelling (`queens` -> `Queens`), which the schema documents as a pattern matching each
value in any case (any_case_pattern). normalised_query() gives what a request means, as
validated here: the response cache keys by it, so two requests share a cached answer only
when they mean the same.
"""

import copy
import datetime
import re
from typing import NamedTuple

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import Q
from django.http import QueryDict
from django_filters import rest_framework as filters
from django_filters.constants import EMPTY_VALUES
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError as ParameterError

from trees import queries
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

# Free text is bounded: no legitimate name or address is this long, and a bound keeps a
# hostile value from costing more than a normal one.
MAX_TEXT_LENGTH = 200
DEFAULT_RADIUS = 250  # metres, when `near` comes without `radius`
SMALLINT_MAX = 32767
BIGINT_MAX = 2**63 - 1

# Coordinates as the schema documents them, so that what the schema allows is exactly what
# the API accepts (the schema fuzzer holds them to that): plain decimals without exponent,
# sign other than `-` or leading zeros, latitude in [-90, 90] and longitude in [-180, 180].
DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
LATITUDE = r"-?(?:90(?:\.0+)?|[1-8]?[0-9](?:\.[0-9]+)?)"
LONGITUDE = r"-?(?:180(?:\.0+)?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]+)?)"
POINT_PATTERN = f"^{LATITUDE},{LONGITUDE}$"
BBOX_PATTERN = f"^{LONGITUDE},{LATITUDE},{LONGITUDE},{LATITUDE}$"


class BBox(NamedTuple):
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


class Point(NamedTuple):
    latitude: float
    longitude: float


def _numbers(value: str, names: tuple[str, ...]) -> list[float]:
    """Comma-separated finite numbers, one for each of `names`."""
    parts = value.split(",")
    if len(parts) != len(names):
        raise ValidationError(
            f"Expected {len(names)} comma-separated numbers ({','.join(names)}), "
            f"got {len(parts)} value(s)."
        )
    numbers = []
    for name, part in zip(names, parts, strict=True):
        if not DECIMAL.fullmatch(part):
            raise ValidationError(f"{name} is not a decimal number such as -73.97: {part[:40]!r}.")
        numbers.append(float(part))  # finite: DECIMAL has no exponent, inf or nan
    return numbers


def _check_latitude(name: str, value: float) -> None:
    if not -90 <= value <= 90:
        raise ValidationError(f"{name} must be between -90 and 90, got {value}.")


def _check_longitude(name: str, value: float) -> None:
    if not -180 <= value <= 180:
        raise ValidationError(f"{name} must be between -180 and 180, got {value}.")


class BBoxField(forms.CharField):
    """`min_lon,min_lat,max_lon,max_lat`, as in GeoJSON.

    A box whose minimum exceeds its maximum on either axis contains nothing, so it matches no
    tree (a 200 with no trees, not a 400: every value the schema allows is a valid request).
    """

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_TEXT_LENGTH, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        box = BBox(*_numbers(value, BBox._fields))
        _check_longitude("min_lon", box.min_lon)
        _check_longitude("max_lon", box.max_lon)
        _check_latitude("min_lat", box.min_lat)
        _check_latitude("max_lat", box.max_lat)
        return box


class PointField(forms.CharField):
    """`lat,lon` in decimal degrees."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_TEXT_LENGTH, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        point = Point(*_numbers(value, ("lat", "lon")))
        _check_latitude("lat", point.latitude)
        _check_longitude("lon", point.longitude)
        return point


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField  # NumberFilter's DecimalField would let "1.5" through


class FloatFilter(filters.NumberFilter):
    field_class = forms.FloatField  # rejects nan and inf


class BBoxFilter(filters.Filter):
    field_class = BBoxField

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return queries.in_bbox(qs, **value._asdict())


class PointFilter(filters.Filter):
    field_class = PointField


def any_case_pattern(values: list[str]) -> str:
    """A pattern matching exactly `values` in any mix of case, as the schema documents them.

    Letter by letter (`[Qq][Uu]...`) rather than an inline flag, which ECMA-262 patterns (the
    ones OpenAPI means) do not have. The values are letters, digits and spaces only.
    """
    alternatives = []
    for value in values:
        if not re.fullmatch(r"[A-Za-z0-9 ]+", value):
            raise ValueError(f"Not a plain value: {value!r}")
        alternatives.append(
            "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in value)
        )
    return f"^(?:{'|'.join(alternatives)})$"


class ChoiceIgnoringCaseField(forms.Field):
    """One of `choices`, in any case, cleaned to the canonical spelling (`queens` -> `Queens`),
    so that spellings that mean the same share their cached answer too.

    ASCII case only, as any_case_pattern documents it: `str.lower()` would also fold, say,
    the Kelvin sign into `k`, which the schema's pattern does not allow. A bad value's error
    lists the valid ones.
    """

    def __init__(self, *, choices, **kwargs):
        self.values = [value for value, _ in choices]
        self.canonical = {value.lower(): value for value in self.values}
        super().__init__(**kwargs)

    def clean(self, value):
        if value in self.empty_values:
            return super().clean(value)  # `required` decides
        found = self.canonical.get(value.lower()) if value.isascii() else None
        if found is None:
            raise ValidationError(
                f"“%(value)s” is not one of: {', '.join(self.values)} (in any case).",
                code="invalid_choice",
                params={"value": value[:40]},
            )
        return found


class ChoiceIgnoringCaseFilter(filters.Filter):
    """A single-valued categorical filter (the problem flags): ChoiceIgnoringCaseField's value,
    or `to_value` of it."""

    field_class = ChoiceIgnoringCaseField

    def __init__(self, *args, to_value=None, **kwargs):
        self.to_value = to_value or {}
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return super().filter(qs, self.to_value.get(value, value))


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ISODateField(forms.Field):
    """`YYYY-MM-DD` and nothing else: Django's DateField would also take `2015-8-7` and
    surrounding spaces, which the schema's `format: date` does not allow."""

    def clean(self, value):
        if value in self.empty_values:
            return super().clean(value)
        if not ISO_DATE.fullmatch(value):
            raise ValidationError("Enter a date as YYYY-MM-DD, e.g. 2015-08-27.", code="invalid")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "No such date: %(value)s.", code="invalid", params={"value": value}
            ) from None


class ISODateFilter(filters.Filter):
    field_class = ISODateField


class AnyOfField(forms.Field):
    """Every value given for one parameter, each checked by `base_field` (a ChoiceField when
    `choices` are given), cleaned to the sorted distinct values.

    Order and repeats do not change what the values mean (any of them), so the cleaned value
    does not keep them either: `a&b`, `b&a` and `a&b&a` clean to the same tuple. A base field
    that normalises its value (say, one matching choices ignoring case) makes equivalent
    spellings clean to the same tuple too.
    """

    widget = forms.MultipleHiddenInput  # reads all of a parameter's values (QueryDict.getlist)

    def __init__(self, *, base_field: forms.Field | None = None, choices=None, **kwargs):
        if base_field is None:
            base_field = forms.ChoiceField(choices=choices)
        self.base_field = base_field
        super().__init__(**kwargs)

    def clean(self, value) -> tuple:
        if not value:
            return ()
        cleaned, errors, seen = set(), [], set()
        for item in value:
            try:
                cleaned.add(self.base_field.clean(item))
            except ValidationError as exc:
                # The errors themselves, not their text: django-filter formats each message
                # with its params, and a value holding `%` must stay a value.
                for error in exc.error_list:
                    if (text := "".join(error.messages)) not in seen:
                        seen.add(text)
                        errors.append(error)
        if errors:
            raise ValidationError(errors)
        return tuple(sorted(cleaned))


class AnyOfFilter(filters.MultipleChoiceFilter):
    """A parameter that may be repeated, matching trees with any of its values: one SQL `IN`.

    django-filter's MultipleChoiceFilter, so that drf-spectacular documents it as an array
    (`explode: true`: the parameter repeated, as `requests` and most clients send a list),
    but with a field that validates any value (AnyOfField) and a single `IN` instead of one
    OR'ed condition per value and a DISTINCT, which only joins to many rows would need.
    """

    field_class = AnyOfField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("distinct", False)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return self.get_method(qs)(**{f"{self.field_name}__in": value})


def documented(filter_: filters.Filter, **schema) -> filters.Filter:
    """Attach the OpenAPI schema of a parameter to its filter, where drf-spectacular reads it.

    For the parameters whose format or bounds the filter's type alone cannot tell. Examples go
    in the description, not as `example`: Swagger UI fills examples in when a visitor clicks
    "Try it out", and the filters' examples together match no tree.
    """
    return extend_schema_field(schema)(filter_)


TEXT_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": r"^[^\x00]+$",
}


def text_filter(*, help_text: str, **kwargs) -> filters.CharFilter:
    """Free text: 1 to MAX_TEXT_LENGTH characters, any but NUL (which Django's forms refuse)."""
    return documented(
        filters.CharFilter(max_length=MAX_TEXT_LENGTH, **kwargs),
        **TEXT_SCHEMA,
        description=help_text,
    )


def categorical(choices, help_text: str) -> AnyOfFilter:
    """A repeatable filter on one of `choices` (a TextChoices), matching ignoring case."""
    values = list(choices.values)
    return documented(
        AnyOfFilter(base_field=ChoiceIgnoringCaseField(choices=choices.choices)),
        type="string",
        pattern=any_case_pattern(values),
        description=f"{help_text} One of `{'`, `'.join(values)}`, in any case. Repeat for any "
        "of several.",
    )


YES_NO = {"Yes": True, "No": False}


def problem_flag(name: str, help_text: str) -> ChoiceIgnoringCaseFilter:
    """A problem flag of the census: `Yes` or `No` in any case (trees without it match neither)."""
    return documented(
        ChoiceIgnoringCaseFilter(
            field_name=name, choices=[(value, value) for value in YES_NO], to_value=YES_NO
        ),
        type="string",
        pattern=any_case_pattern(list(YES_NO)),
        description=f"{help_text} `Yes` or `No`, in any case.",
    )


class NTAField(forms.CharField):
    """A 2010 NTA code in any case, cleaned to capitals as stored (`qn17` -> `QN17`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        kwargs.setdefault(
            "validators",
            [RegexValidator(r"^[A-Za-z]{2}[0-9]{2}\Z", "Enter a 2010 NTA code such as QN17.")],
        )
        super().__init__(**kwargs)

    def clean(self, value):
        return super().clean(value).upper()  # the validator let ASCII letters only through


# A census tract as Socrata writes it: the number, and two decimals for a split tract.
CENSUS_TRACT = r"[0-9]{1,6}(?:\.[0-9]{1,2})?"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class FilterSet(filters.FilterSet):
    """django-filter's FilterSet, minus copies it makes again on every request.

    Measured in gunicorn, these were a third of an uncached trees/ request: django-filter
    deep-copies all 20 filters and builds a new form class (20 new form fields, copied once
    more by each form) for each request, though all follow from the declarations alone. So
    the form class is built once per FilterSet class and shares its fields (SharedFields),
    and each filter is copied shallowly: a request only sets its `model` and `parent`, and
    re-setting `method` binds a method filter to its copy. Otherwise this is django-filter's
    own __init__ (its version is pinned in requirements.txt).
    """

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {}
        for name, declared in self.base_filters.items():
            filter_ = copy.copy(declared)
            filter_.method = declared.method
            filter_.model = queryset.model
            filter_.parent = self
            self.filters[name] = filter_

    def get_form_class(self):
        cls = type(self)
        if "_form_class" not in cls.__dict__:  # each subclass builds its own
            form_class = super().get_form_class()
            form_class.base_fields = SharedFields(form_class.base_fields)
            cls._form_class = form_class
        return cls._form_class

    @classmethod
    def clean_parameters(cls, params: QueryDict) -> list[tuple[str, object]]:
        """The given filters' values, as this FilterSet's form cleans them, for normalised_query.

        Field by field, for the parameters given only: the form would bind and clean all of
        its fields (34 for trees/), which measured ten times the cost, on the hot path of
        every cached response with a query (benchmarks/bench_api.py, cached_filtered). The
        same fields and widgets clean each value, and these forms have no form-wide clean(),
        so the outcome is the form's; tests/api/test_filters.py holds the two to agreeing.
        Raises ValidationError for the first invalid value.
        """
        form_class = cls.__dict__.get("_form_class") or cls().get_form_class()
        fields = form_class.base_fields
        cleaned = []
        for name in params:
            field = fields.get(name)
            if field is not None:
                value = field.clean(field.widget.value_from_datadict(params, {}, name))
                if value not in EMPTY_VALUES:
                    cleaned.append((name, value))
        return cleaned


class SharedFields(dict):
    """A form's fields, shared by every instance instead of deep-copied into each one.

    Django copies them so that one form's changes (say, a widget's attributes while it is
    rendered) cannot leak into the next; these forms are only ever validated, which changes
    no field, and their copying was a tenth of an uncached trees/ request.
    """

    def __deepcopy__(self, memo):
        return dict(self)


class TreeFilterSet(FilterSet):
    """The filters of `trees/` and `stats/`. Different parameters combine with AND; the values
    of a repeated categorical one with OR (`borough=Bronx&borough=Queens&health=Poor`: poor
    trees in either borough).

    Every combination the schema allows is a valid request, since a schema cannot say that
    one parameter depends on another: `dbh_min` above `dbh_max` or an inverted `bbox` match
    no tree, and `radius` without `near` changes nothing. The schema fuzzer holds the API to
    that (tests/api/test_fuzz.py).
    """

    borough = categorical(Borough, "Borough.")
    zipcode = documented(
        AnyOfFilter(
            base_field=forms.CharField(
                validators=[RegexValidator(r"^[0-9]{1,5}\Z", "Enter a ZIP code: 1 to 5 digits.")]
            )
        ),
        type="string",
        pattern=r"^[0-9]{1,5}$",
        description="ZIP code, exactly, e.g. `11375` (`83` is Central Park). Repeat for any "
        "of several.",
    )
    nta = documented(
        AnyOfFilter(base_field=NTAField()),
        type="string",
        pattern=r"^[A-Za-z]{2}[0-9]{2}$",
        description="2010 Neighborhood Tabulation Area code, in any case, e.g. `QN17`. Repeat "
        "for any of several.",
    )
    species = documented(
        AnyOfFilter(
            base_field=forms.CharField(max_length=MAX_TEXT_LENGTH),
            method="filter_species",
        ),
        **TEXT_SCHEMA,
        description="Species common or latin name, whole and ignoring case (`red maple`, "
        "`Acer rubrum`). See `species/` for the names. Repeat for any of several.",
    )
    species_search = text_filter(
        method="filter_species_search",
        help_text="Part of the species' common or latin name, ignoring case: `maple` matches "
        "red maple, Norway maple, ...",
    )
    species_id = documented(
        AnyOfFilter(
            field_name="species_id",
            base_field=forms.IntegerField(min_value=1, max_value=BIGINT_MAX),
        ),
        type="integer",
        minimum=1,
        maximum=BIGINT_MAX,
        description="Species id, as in `species/`. Repeat for any of several.",
    )
    health = categorical(Health, "Health of a living tree (dead trees have none).")
    status = categorical(Status, "Alive, Dead or Stump.")
    steward = categorical(Steward, "Signs of stewardship seen on the tree.")
    guards = categorical(Guards, "Tree guard, and whether it helps or harms the tree.")
    curb_loc = categorical(CurbLocation, "Where the tree stands relative to the curb.")
    sidewalk = categorical(Sidewalk, "Whether the sidewalk next to the tree is damaged.")
    user_type = categorical(UserType, "Who recorded the tree.")
    community_board = documented(
        AnyOfFilter(base_field=forms.IntegerField(min_value=100, max_value=599)),
        type="integer",
        minimum=100,
        maximum=599,
        description="Community board: the borough digit then the district, e.g. `406` "
        "(Queens 6). Repeat for any of several.",
    )
    council_district = documented(
        AnyOfFilter(base_field=forms.IntegerField(min_value=1, max_value=51)),
        type="integer",
        minimum=1,
        maximum=51,
        description="City Council district, 1 to 51. Repeat for any of several.",
    )
    census_tract = documented(
        AnyOfFilter(
            base_field=forms.CharField(
                strip=False,
                validators=[
                    RegexValidator(
                        rf"^{CENSUS_TRACT}\Z", "Enter a census tract such as 739 or 376.02."
                    )
                ],
            )
        ),
        type="string",
        pattern=f"^{CENSUS_TRACT}$",
        description="Census tract as the census writes it (without the borough digit), "
        "exactly, e.g. `739` or `376.02`. Repeat for any of several.",
    )
    address = text_filter(
        lookup_expr="icontains", help_text="Part of the address, ignoring case (`broadway`)."
    )
    created_min = documented(
        ISODateFilter(field_name="surveyed_on", lookup_expr="gte"),
        type="string",
        format="date",
        pattern=DATE_PATTERN,
        description="Surveyed on or after this day (`YYYY-MM-DD`; Socrata's `created_at`).",
    )
    created_max = documented(
        ISODateFilter(field_name="surveyed_on", lookup_expr="lte"),
        type="string",
        format="date",
        pattern=DATE_PATTERN,
        description="Surveyed on or before this day (`YYYY-MM-DD`, inclusive).",
    )
    problem = text_filter(
        field_name="problems",
        lookup_expr="icontains",
        help_text="Part of the problem list, ignoring case (`Stones`, `BranchLights`, ...).",
    )
    root_stone = problem_flag("root_stone", "Roots hemmed in by stones or paving.")
    root_grate = problem_flag("root_grate", "Roots hemmed in by a metal grate.")
    root_other = problem_flag("root_other", "Other root problems.")
    trunk_wire = problem_flag("trunk_wire", "Wires or rope wrapped around the trunk.")
    trnk_light = problem_flag("trnk_light", "Lights on the trunk.")
    trnk_other = problem_flag("trnk_other", "Other trunk problems.")
    brch_light = problem_flag("brch_light", "Lights or wires in the branches.")
    brch_shoe = problem_flag("brch_shoe", "Sneakers in the branches.")
    brch_other = problem_flag("brch_other", "Other branch problems.")
    dbh_min = documented(
        IntegerFilter(
            field_name="tree_dbh", lookup_expr="gte", min_value=0, max_value=SMALLINT_MAX
        ),
        type="integer",
        minimum=0,
        maximum=SMALLINT_MAX,
        description="Smallest trunk diameter, in inches (inclusive).",
    )
    dbh_max = documented(
        IntegerFilter(
            field_name="tree_dbh", lookup_expr="lte", min_value=0, max_value=SMALLINT_MAX
        ),
        type="integer",
        minimum=0,
        maximum=SMALLINT_MAX,
        description="Largest trunk diameter, in inches (inclusive).",
    )
    bbox = documented(
        BBoxFilter(),
        type="string",
        pattern=BBOX_PATTERN,
        description="Only trees inside this box: `min_lon,min_lat,max_lon,max_lat` in decimal "
        "degrees (GeoJSON order, corners included), e.g. `-73.99,40.75,-73.97,40.77`. A box "
        "whose minimum exceeds its maximum contains no tree.",
    )
    near = documented(
        PointFilter(method="filter_near"),
        type="string",
        pattern=POINT_PATTERN,
        description="Only trees within `radius` metres of this point: `lat,lon` in decimal "
        "degrees (latitude first), e.g. `40.7128,-74.0060`. Each tree then carries its "
        "`distance` in metres, and `ordering=distance` lists the nearest first.",
    )
    radius = documented(
        FloatFilter(
            method="filter_radius",
            min_value=1,
            max_value=lambda: settings.API_MAX_RADIUS,
        ),
        type="number",
        minimum=1,
        maximum=settings.API_MAX_RADIUS,
        # The default is in the words only: as a schema `default`, Swagger UI would send it
        # with every "Try it out".
        description=f"Radius in metres for `near` (default {DEFAULT_RADIUS}, at most "
        f"{settings.API_MAX_RADIUS}); without `near` it changes nothing.",
    )

    class Meta:
        model = Tree
        fields = []  # all declared above, each with its own validation

    # Bounds that match no tree when the lower exceeds the upper.
    RANGES = (("dbh_min", "dbh_max"), ("created_min", "created_max"))

    def filter_queryset(self, queryset):
        if self.matches_no_tree():
            return queryset.none()
        return super().filter_queryset(queryset)

    def matches_no_tree(self) -> bool:
        """Whether a range or the box is empty: then the answer needs no query. (Postgres,
        asked, walks a whole index in tree_id order looking for a first match: 0.2-0.5 s.)"""
        cleaned = self.form.cleaned_data
        for low, high in self.RANGES:
            bounds = cleaned.get(low), cleaned.get(high)
            if None not in bounds and bounds[0] > bounds[1]:
                return True
        box = cleaned.get("bbox")
        return bool(box) and (box.min_lon > box.max_lon or box.min_lat > box.max_lat)

    def filter_species(self, queryset, name, value):
        return queries.of_species_named(queryset, *value)

    def filter_species_search(self, queryset, name, value):
        return queries.of_species_matching(queryset, value)

    def filter_near(self, queryset, name, value):
        radius = self.form.cleaned_data.get("radius") or DEFAULT_RADIUS
        return queries.within_radius(
            queryset, latitude=value.latitude, longitude=value.longitude, radius_m=radius
        )

    def filter_radius(self, queryset, name, value):
        return queryset  # applied by filter_near, together with the point; alone, nothing


MAX_GROUP_COLUMNS = 3
_COLUMN = "|".join(queries.GROUP_COLUMNS)
# 1 to MAX_GROUP_COLUMNS of the columns, comma-separated, none twice (the lookahead).
GROUP_BY_PATTERN = (
    rf"^(?!(?:.*,)?({_COLUMN}),(?:.*,)?\1(?:,|$))"
    rf"(?:{_COLUMN})(?:,(?:{_COLUMN})){{0,{MAX_GROUP_COLUMNS - 1}}}$"
)
_VALID_COLUMNS = f"Valid columns: {', '.join(queries.GROUP_COLUMNS)}."


class GroupByField(forms.CharField):
    """`col[,col]`: one to MAX_GROUP_COLUMNS distinct GROUP_COLUMNS, cleaned to their tuple
    in the order given (the order of the keys of each group)."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "error_messages", {"required": f"Give the column(s) to group by. {_VALID_COLUMNS}"}
        )
        super().__init__(max_length=MAX_TEXT_LENGTH, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        columns = tuple(value.split(","))
        unknown = [column for column in columns if column not in queries.GROUP_COLUMNS]
        if unknown:
            shown = ", ".join(repr(column[:40]) for column in unknown)
            raise ValidationError(f"Unknown column(s): {shown}. {_VALID_COLUMNS}")
        if len(set(columns)) != len(columns):
            raise ValidationError(f"A column is given twice. {_VALID_COLUMNS}")
        if len(columns) > MAX_GROUP_COLUMNS:
            raise ValidationError(
                f"At most {MAX_GROUP_COLUMNS} columns, got {len(columns)}. {_VALID_COLUMNS}"
            )
        return columns


class GroupByFilter(filters.Filter):
    field_class = GroupByField
    hint = _VALID_COLUMNS  # added to parameter_errors' messages about `by`


class GroupFilterSet(TreeFilterSet):
    """The filters of `trees/`, and `by`: the columns to group the matching trees by."""

    by = documented(
        GroupByFilter(method="filter_by", required=True),
        type="string",
        pattern=GROUP_BY_PATTERN,
        description=f"Required. The column(s) to group by, comma-separated, at most "
        f"{MAX_GROUP_COLUMNS} and none twice: any of `{'`, `'.join(queries.GROUP_COLUMNS)}`. "
        "E.g. `borough` or `borough,species`.",
    )

    class Meta(TreeFilterSet.Meta):
        pass

    def filter_by(self, queryset, name, value):
        return queryset  # read by the view (group_columns), not a filter

    @classmethod
    def group_columns(cls, params: QueryDict) -> tuple[str, ...]:
        """`by` as validated; for a request the filter backend has already let through."""
        return GroupByField().clean(params.get("by"))


SPECIES_ORDERINGS = [
    f"{sign}{name}" for name in ("latin_name", "common_name", "tree_count") for sign in ("", "-")
]


class SpeciesFilterSet(TreeFilterSet):
    """`search` and `ordering` of the species themselves, and the tree filters of `trees/`:
    given any of these, each species counts only the trees matching them, and the species
    with none are left out (`borough=Bronx`: the Bronx's species, with its trees of each)."""

    search = text_filter(
        method="filter_search",
        help_text="Part of the common or latin name, ignoring case (`maple`, `Quercus`).",
    )
    # One ordering, from a closed list (not django-filter's OrderingFilter, whose
    # comma-separated list the schema can only describe as an array that may be empty).
    ordering = filters.ChoiceFilter(
        choices=[(name, name) for name in SPECIES_ORDERINGS],
        method="filter_ordering",
        help_text="Sort order, `-` first for descending; ties in latin name order. "
        "Default `latin_name`.",
    )

    class Meta:
        model = Species
        fields = []

    def filter_queryset(self, queryset):
        tree_filters = {
            name: value
            for name, value in self.form.cleaned_data.items()
            if name in TreeFilterSet.base_filters and value not in EMPTY_VALUES
        }
        if tree_filters and self.matches_no_tree():
            return queryset.none()
        if tree_filters:
            trees = Tree.objects.all()
            for name, value in tree_filters.items():
                trees = self.filters[name].filter(trees, value)
            counted = queries.species_with_tree_counts(trees)
            queryset = counted.filter(pk__in=queryset.values("pk"))
        for name in ("search", "ordering"):
            value = self.form.cleaned_data.get(name)
            if value not in EMPTY_VALUES:
                queryset = self.filters[name].filter(queryset, value)
        return queryset

    def filter_ordering(self, queryset, name, value):
        return queryset.order_by(value, "latin_name")

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(common_name__icontains=value) | Q(latin_name__icontains=value))


class KnownParametersFilterBackend(filters.DjangoFilterBackend):
    """django-filter's backend, which also answers 400 to a parameter the endpoint doesn't take,
    to one given without a value, and to one given twice that takes a single value.

    A misspelt filter (`?borogh=Queens`) would otherwise be ignored and silently return every
    tree, and every ignored spelling would be one more cache entry for the same answer. An
    empty value (`?zipcode=`) is no ZIP code, as the schema says: django-filter would ignore it.
    A repeated single-valued parameter (`dbh_min=3&dbh_min=30`) has no one meaning: Django
    would silently take the last value.
    """

    def filter_queryset(self, request, queryset, view):
        errors = parameter_errors(
            request.query_params, self.get_filterset_class(view, queryset), view.pagination_class
        )
        if errors:
            raise ParameterError(errors)
        return super().filter_queryset(request, queryset, view)


FORMAT_PARAMETER = "format"  # read by trees.api.negotiation; the cache keys by its outcome


def known_parameters(filterset_class, paginator_class) -> set[str]:
    names = {FORMAT_PARAMETER}
    if filterset_class is not None:
        names |= set(filterset_class.base_filters)
    names |= set(getattr(paginator_class, "query_parameters", ()))
    return names


def repeatable_parameters(filterset_class) -> set[str]:
    """The parameters whose repeated values mean any of them (OR)."""
    if filterset_class is None:
        return set()
    return {
        name for name, filter_ in filterset_class.base_filters.items()
        if isinstance(filter_, AnyOfFilter)
    }  # fmt: skip


def parameter_errors(params: QueryDict, filterset_class, paginator_class) -> dict[str, list[str]]:
    """Parameters that are unknown, empty, or repeated where one value is all they take."""
    known = known_parameters(filterset_class, paginator_class)
    repeatable = None
    errors = {}
    for name, values in params.lists():
        if name not in known:
            takes = ", ".join(sorted(known))
            errors[name] = [f"Unknown parameter. This endpoint takes: {takes}."]
        elif "" in values:
            errors[name] = ["Empty value: give one, or leave the parameter out."]
        elif len(values) > 1:
            if repeatable is None:
                repeatable = repeatable_parameters(filterset_class)
            if name not in repeatable:
                message = (
                    f"Given {len(values)} times: this parameter takes one value. (Repeat only "
                    "the filters that take several, which match any of them.)"
                )
                declared = filterset_class.base_filters.get(name) if filterset_class else None
                hint = getattr(declared, "hint", None)
                errors[name] = [f"{message} {hint}" if hint else message]
    return dict(sorted(errors.items()))


def normalised_query(
    params: QueryDict, filterset_class, paginator_class
) -> list[tuple[str, object]] | None:
    """What a request's parameters mean, as the view will use them, or None if any is invalid.

    Each parameter given appears once, with its value as validated: a filter's as its form
    field cleans it (repeated values as their sorted distinct tuple, numbers as numbers), and
    the paging parameters as the paginator reads them. `format` stays as given (the cache
    keys by the negotiated format besides): the same format asked for by Accept gives the
    same body but for its `next`/`previous` links, which keep `?format=` only when it was
    given, and a client whose Accept header asks for the other format needs them to. None
    means the view will answer with a 400 (these are the same checks), which is never cached.
    """
    if not params:
        return []
    if parameter_errors(params, filterset_class, paginator_class):
        return None
    query = []
    if FORMAT_PARAMETER in params:
        query.append((FORMAT_PARAMETER, params[FORMAT_PARAMETER]))
    if filterset_class is not None:
        try:
            query += filterset_class.clean_parameters(params)
        except ValidationError:
            return None
    if paginator_class is not None:
        try:
            query += paginator_class().cleaned_parameters(params).items()
        except ParameterError:
            return None
    return query

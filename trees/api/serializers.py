"""Output shapes of the API. Nothing here queries: the views hand in what to show."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

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
from trees.queries import GROUP_COLUMNS, TREE_SUMMARY_COLUMNS


class SpeciesSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Species
        fields = ["id", "latin_name", "common_name"]


class SpeciesSerializer(serializers.ModelSerializer):
    tree_count = serializers.IntegerField(read_only=True, help_text="Trees of this species.")

    class Meta:
        model = Species
        fields = ["id", "latin_name", "common_name", "tree_count"]


# Every key a tree may carry: each stored column (the species as one object), and `distance`
# with `near`. `fields=` picks any of them (trees.api.fields), on lists and details alike.
ITEM_FIELDS: tuple[str, ...] = (
    *(field.name for field in Tree._meta.concrete_fields),
    "distance",
)
# What a list item carries without `fields=`.
LIST_FIELDS = [
    "species" if column == "species_id" else column for column in TREE_SUMMARY_COLUMNS
] + ["distance"]


class OptionalKeys:
    """Marks no key required in the schema: with `fields=`, a tree carries only those asked
    for, so any key may be missing. drf-spectacular makes a response key required when its
    field is required or read-only; these serializers only ever write responses, so neither
    flag changes what they do."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
            field.read_only = False
        return fields


class TreeSerializer(OptionalKeys, serializers.ModelSerializer):
    """A tree in a list: what it is, where, and the attributes the filters look at
    (LIST_FIELDS), or the keys `fields=` asks for (any of ITEM_FIELDS).

    It reads the dict rows of queries.tree_summaries(), not model instances.
    """

    species = SpeciesSummarySerializer(allow_null=True, read_only=True)
    distance = serializers.FloatField(
        allow_null=True,
        read_only=True,
        help_text="Metres from the `near` point; null without `near`.",
    )

    class Meta:
        model = Tree
        fields = list(ITEM_FIELDS)

    def to_representation(self, row: dict) -> dict:
        """The dict DRF's fields would build from the model (a test holds them equal).

        Made directly because DRF's per-field machinery, some 20 calls per field, was the
        next largest cost of a page of 50 trees. Dates stay dates: the encoder writes ISO.
        """
        data = {}
        for name in self.context.get("fields") or LIST_FIELDS:
            if name == "species":
                data[name] = (
                    None
                    if row["species_id"] is None
                    else {
                        "id": row["species_id"],
                        "latin_name": row["species_latin_name"],
                        "common_name": row["species_common_name"],
                    }
                )
            else:
                data[name] = row.get(name)  # `distance` only with `near`
        return data


class TreeDetailSerializer(OptionalKeys, serializers.ModelSerializer):
    """Everything the census says about one tree, or the keys `fields=` asks for."""

    species = SpeciesSummarySerializer(allow_null=True, read_only=True)
    distance = serializers.FloatField(
        allow_null=True,
        read_only=True,
        help_text="Only with `fields=distance`: metres from the `near` point, or null.",
    )

    class Meta:
        model = Tree
        fields = list(ITEM_FIELDS)  # (the GeoJSON properties below leave out the coordinates)

    def to_representation(self, tree: Tree) -> dict:
        data = super().to_representation(tree)
        fields = self.context.get("fields")  # `fields=`: these keys only, in this order
        if not fields:
            del data["distance"]
            return data
        return {name: data[name] for name in fields}


# --- Statistics --------------------------------------------------------------------------------


class BoroughCountSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=Borough.choices)
    count = serializers.IntegerField()


class StatusCountSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=Status.choices)
    count = serializers.IntegerField()


class HealthCountSerializer(serializers.Serializer):
    value = serializers.ChoiceField(
        choices=Health.choices, allow_null=True, help_text="null: not recorded (dead, stump)."
    )
    count = serializers.IntegerField()


class SpeciesCountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    latin_name = serializers.CharField()
    common_name = serializers.CharField()
    count = serializers.IntegerField()


class DiameterBinSerializer(serializers.Serializer):
    min_inches = serializers.IntegerField(help_text="Smallest diameter in the bin.")
    max_inches = serializers.IntegerField(
        allow_null=True, help_text="Diameters are below this; null for the last, open bin."
    )
    count = serializers.IntegerField()


@extend_schema_serializer(many=False)  # the body of a list action, but one object
class TreeStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Trees matching the filters.")
    by_borough = BoroughCountSerializer(many=True)
    by_status = StatusCountSerializer(many=True)
    by_health = HealthCountSerializer(many=True)
    top_species = SpeciesCountSerializer(many=True, help_text="The ten most common species.")
    diameter_histogram = DiameterBinSerializer(
        many=True,
        help_text="Trunk diameters in 6-inch bins; trees without a diameter are left out.",
    )


# --- Grouped aggregates ----------------------------------------------------------------------


class GroupSerializer(serializers.Serializer):
    """One group: the value of each column grouped by (only those keys), and its aggregates.

    Every column is declared here, not required, so that the schema gives one model for any
    `by`. It reads queries.Group.
    """

    borough = serializers.ChoiceField(choices=Borough.choices, required=False)
    nta = serializers.CharField(required=False, allow_null=True)
    zipcode = serializers.CharField(required=False, allow_null=True)
    species = SpeciesSummarySerializer(
        required=False, allow_null=True, help_text="null: no species recorded (dead, stump)."
    )
    health = serializers.ChoiceField(
        choices=Health.choices,
        required=False,
        allow_null=True,
        help_text="null: not recorded (dead, stump).",
    )
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    steward = serializers.ChoiceField(choices=Steward.choices, required=False, allow_null=True)
    guards = serializers.ChoiceField(choices=Guards.choices, required=False, allow_null=True)
    curb_loc = serializers.ChoiceField(
        choices=CurbLocation.choices, required=False, allow_null=True
    )
    sidewalk = serializers.ChoiceField(choices=Sidewalk.choices, required=False, allow_null=True)
    user_type = serializers.ChoiceField(choices=UserType.choices, required=False, allow_null=True)
    council_district = serializers.IntegerField(required=False, allow_null=True)
    community_board = serializers.IntegerField(required=False, allow_null=True)
    count = serializers.IntegerField(help_text="Trees in the group.")
    dbh_mean = serializers.FloatField(
        allow_null=True, help_text="Mean trunk diameter, inches; null if none recorded."
    )
    dbh_median = serializers.FloatField(
        allow_null=True, help_text="Median trunk diameter, inches (interpolated)."
    )
    poor_share = serializers.FloatField(
        allow_null=True,
        help_text="Share (0 to 1) in Poor health of the group's trees whose health was "
        "recorded; null if none was (dead trees and stumps have none).",
    )

    def to_representation(self, group) -> dict:
        return {
            **group.values,
            "count": group.count,
            "dbh_mean": group.dbh_mean,
            "dbh_median": group.dbh_median,
            "poor_share": group.poor_share,
        }


# The body of a list action, but one object. Not "Groups": a model with a property of its
# own snake-case name (`groups`) is generated with the two as one variable (mypy rejects it).
@extend_schema_serializer(many=False, component_name="TreeGroups")
class GroupsSerializer(serializers.Serializer):
    by = serializers.ListField(
        child=serializers.ChoiceField(choices=GROUP_COLUMNS), help_text="The columns grouped by."
    )
    total = serializers.IntegerField(help_text="Trees matching the filters: the groups' sum.")
    groups = GroupSerializer(many=True, help_text="Largest first, then by the columns' values.")


# --- Shapes only for the schema: what trees.api.renderers and trees.api.errors produce ----------


class ErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    detail = serializers.CharField(help_text="What went wrong, for people.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Invalid query parameters: each name with what is wrong with it.",
    )


class PointSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Point"])
    coordinates = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        help_text="[longitude, latitude], in that order (GeoJSON).",
    )


class TreePropertiesSerializer(TreeSerializer):
    class Meta(TreeSerializer.Meta):
        fields = [f for f in TreeSerializer.Meta.fields if f not in ("latitude", "longitude")]


class TreeDetailPropertiesSerializer(TreeDetailSerializer):
    class Meta(TreeDetailSerializer.Meta):
        fields = [
            f for f in TreeDetailSerializer.Meta.fields if f not in ("latitude", "longitude")
        ]


class TreeFeatureSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Feature"])
    id = serializers.IntegerField(help_text="The tree_id.")
    geometry = PointSerializer()
    properties = TreePropertiesSerializer()


class TreeDetailFeatureSerializer(TreeFeatureSerializer):
    properties = TreeDetailPropertiesSerializer()


@extend_schema_serializer(many=False)  # a list endpoint, but this is the whole body
class TreeFeatureCollectionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = TreeFeatureSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    previous = serializers.URLField(
        allow_null=True, help_text="The previous page; null on the first."
    )

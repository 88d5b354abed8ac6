"""Admin for staff: browse and search the census, and see every sync run.

The tree table has 683,788 rows, so the changelist avoids what is cheap on small tables
and slow on big ones: one query per row (list_select_related), a full-table count on every
page (show_full_result_count and the estimating paginator), and an OR across joined tables
in search (queries.search_trees).
"""

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count
from django.utils.functional import cached_property

from trees import queries
from trees.cache import bump_data_version
from trees.models import Species, SyncRun, Tree


class EstimatedCountPaginator(Paginator):
    """Counts filtered results exactly, but takes Postgres's estimate for the whole table."""

    # Below this many rows an exact count is cheap and nicer to read.
    exact_below = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            estimate = queries.estimated_row_count(self.object_list.model)
            if estimate is not None and estimate >= self.exact_below:
                return estimate
        return super().count


class BumpsDataVersion:
    """Edits here change what the API serves, so they bump the data version as a sync does.

    Inside the admin's own transaction: the API's cached responses for the old data become
    unreachable when (and only if) the edit commits.
    """

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        bump_data_version()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        bump_data_version()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        bump_data_version()


@admin.register(Tree)
class TreeAdmin(BumpsDataVersion, admin.ModelAdmin):
    list_display = [
        "tree_id",
        "species_name",
        "status",
        "health",
        "tree_dbh",
        "address",
        "zipcode",
        "borough",
    ]
    list_select_related = ["species"]
    list_filter = ["borough", "health", "status", "curb_loc"]
    search_fields = ["tree_id", "address", "zipcode", "species__common_name"]
    search_help_text = "Tree id, ZIP code, part of an address, or a species name."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    autocomplete_fields = ["species"]
    fieldsets = [
        (None, {"fields": ["tree_id", "species", "status", "health", "surveyed_on"]}),
        ("Size", {"fields": ["tree_dbh", "stump_diam"]}),
        (
            "Site",
            {
                "fields": [
                    "curb_loc",
                    "steward",
                    "guards",
                    "sidewalk",
                    "user_type",
                    "problems",
                ]
            },
        ),
        (
            "Problems",
            {
                "fields": [
                    ("root_stone", "root_grate", "root_other"),
                    ("trunk_wire", "trnk_light", "trnk_other"),
                    ("brch_light", "brch_shoe", "brch_other"),
                ]
            },
        ),
        (
            "Place",
            {
                "fields": [
                    "address",
                    ("zipcode", "zip_city"),
                    ("borough", "borocode"),
                    ("nta", "nta_name"),
                    ("latitude", "longitude"),
                    ("x_sp", "y_sp"),
                    "block_id",
                ]
            },
        ),
        (
            "Districts",
            {
                "classes": ["collapse"],
                "fields": [
                    "community_board",
                    ("cncldist", "council_district"),
                    ("st_assem", "st_senate"),
                    ("boro_ct", "census_tract"),
                    ("bin", "bbl"),
                    "state",
                ],
            },
        ),
        ("Socrata", {"fields": ["socrata_id", "socrata_updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The key is Socrata's; changing it would detach the row from its source.
        return ["tree_id"] if obj is not None else []

    @admin.display(description="species", ordering="species__common_name")
    def species_name(self, tree: Tree) -> str:
        return tree.species.common_name if tree.species else "—"

    def get_search_results(self, request, queryset, search_term):
        return queries.search_trees(queryset, search_term), False


@admin.register(Species)
class SpeciesAdmin(BumpsDataVersion, admin.ModelAdmin):
    list_display = ["latin_name", "common_name", "tree_count"]
    search_fields = ["latin_name", "common_name"]
    ordering = ["latin_name"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        # Only the changelist shows counts; the autocomplete behind the tree form must not
        # count 683,788 trees on every keystroke.
        match = request.resolver_match
        if match is not None and match.url_name == "trees_species_changelist":
            queryset = queryset.annotate(tree_count=Count("trees"))
        return queryset

    @admin.display(description="trees", ordering="tree_count")
    def tree_count(self, species: Species) -> int:
        return species.tree_count


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """Read-only: runs are written by `sync_trees`, never by hand."""

    list_display = [
        "id",
        "started_at",
        "dataset",
        "mode",
        "status",
        "duration",
        "rows_fetched",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_deleted",
        "rows_rejected",
    ]
    list_filter = ["status", "mode", "dataset"]
    ordering = ["-started_at", "-id"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

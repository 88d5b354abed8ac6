"""Admin for staff: browse and search the census, and see every sync run.

Trees and species mirror Socrata: the next sync overwrites any edit made here, so they are
read-only (view permission only, superusers included) unless ADMIN_ALLOW_EDITS is set, and
then their change pages warn. Sync runs are always read-only.

The tree table has 683,788 rows, so the changelist avoids what is cheap on small tables
and slow on big ones: one query per row (list_select_related), a full-table count on every
page (show_full_result_count and the estimating paginator), and an OR across joined tables
in search (queries.search_trees).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from trees import minimap, queries
from trees.cache import bump_data_version
from trees.models import Species, SyncRun, Tree

admin.site.site_header = "NYC street trees"
admin.site.site_title = "NYC street trees admin"

# The minimap: trees within this many metres of the one shown, and at most this many.
MINIMAP_RADIUS = 150
MINIMAP_MAX_NEIGHBOURS = 400


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


class MirroredAdmin:
    """Read-only unless ADMIN_ALLOW_EDITS: the next sync would overwrite an edit.

    Read at each request (not at import), so a test can override the setting.
    """

    change_form_template = "admin/trees/mirrored_change_form.html"

    def has_add_permission(self, request):
        return settings.ADMIN_ALLOW_EDITS and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return settings.ADMIN_ALLOW_EDITS and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return settings.ADMIN_ALLOW_EDITS and super().has_delete_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "edits_allowed": settings.ADMIN_ALLOW_EDITS}
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(Tree)
class TreeAdmin(MirroredAdmin, BumpsDataVersion, admin.ModelAdmin):
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
        ("Map", {"fields": ["minimap"]}),
        ("Socrata", {"fields": ["socrata_id", "socrata_updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The key is Socrata's; changing it would detach the row from its source.
        return ["tree_id", "minimap"] if obj is not None else ["minimap"]

    @admin.display(description="where it stands")
    def minimap(self, tree: Tree) -> str:
        if tree.latitude is None or tree.longitude is None:
            return "—"
        # The GiST index on the PostGIS point, then the great circle: the nearest first.
        nearby = (
            queries.within_radius(
                Tree.objects.exclude(pk=tree.pk),
                latitude=tree.latitude,
                longitude=tree.longitude,
                radius_m=MINIMAP_RADIUS,
            )
            .select_related("species")
            .only("tree_id", "latitude", "longitude", "status", "species__common_name")
            .order_by("distance", "tree_id")[:MINIMAP_MAX_NEIGHBOURS]
        )
        centre = minimap.Place(tree.latitude, tree.longitude, tree_label(tree))
        neighbours = [
            minimap.Place(
                other.latitude,
                other.longitude,
                tree_label(other),
                reverse("admin:trees_tree_change", args=[other.pk]),
            )
            for other in nearby
        ]
        # minimap.render escapes every text and link it writes.
        return mark_safe(minimap.render(centre, neighbours, radius=MINIMAP_RADIUS))  # noqa: S308

    @admin.display(description="species", ordering="species__common_name")
    def species_name(self, tree: Tree) -> str:
        return tree.species.common_name if tree.species else "—"

    def get_search_results(self, request, queryset, search_term):
        return queries.search_trees(queryset, search_term), False


def tree_label(tree: Tree) -> str:
    species = tree.species.common_name if tree.species else tree.status
    return f"Tree {tree.tree_id}: {species or tree.status}"


@admin.register(Species)
class SpeciesAdmin(MirroredAdmin, BumpsDataVersion, admin.ModelAdmin):
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


def humanise_duration(duration: timedelta | None) -> str:
    """'0.9 s', '42 s', '4 min 12 s', '2 h 5 min'; '—' while a run has no end."""
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, seconds = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def local_time(moment: datetime | None, *, seconds: bool = True) -> str:
    """A time in the project's TIME_ZONE with the zone's abbreviation: 2026-12-04 16:27:05 EST."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def _count_column(field: str, description: str):
    """A sync-run count as a column, with thousands separators, sortable by its field."""

    @admin.display(description=description, ordering=field)
    def column(self, run: SyncRun) -> str:
        return f"{getattr(run, field):,}"

    return column


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """Read-only: runs are written by `sync_trees`, never by hand.

    The list fits a 1366-pixel screen beside the admin's sidebars: when, how, how it ended, how
    long, and three counts (what changed, split on the detail page).
    """

    list_display = [
        "started",
        "mode",
        "status",
        "dry_run",
        "took",
        "fetched",
        "changed",
        "rejected",
    ]
    list_display_links = ["started"]
    list_filter = ["status", "mode", "dry_run", "dataset"]
    ordering = ["-started_at", "-id"]
    date_hierarchy = "started_at"
    fieldsets = [
        (None, {"fields": ["dataset", "source", "mode", "dry_run", "status"]}),
        ("Time", {"fields": ["started_time", "finished", "took", "time_zone"]}),
        (
            "Rows",
            {"fields": ["fetched", "inserted", "updated", "unchanged", "deleted", "rejected"]},
        ),
        ("Warnings", {"fields": ["warning_list", "error_message", "rejections"]}),
        ("Bookkeeping", {"classes": ["collapse"], "fields": ["watermark_time", "backend_pid"]}),
    ]
    readonly_fields = [
        "started_time",
        "finished",
        "took",
        "time_zone",
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
        "warning_list",
        "rejections",
        "watermark_time",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="started", ordering="started_at")
    def started(self, run: SyncRun) -> str:
        return local_time(run.started_at, seconds=False)

    @admin.display(description="started")
    def started_time(self, run: SyncRun) -> str:
        return local_time(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: SyncRun) -> str:
        return local_time(run.finished_at)

    @admin.display(description="duration")
    def took(self, run: SyncRun) -> str:
        return humanise_duration(run.duration)

    @admin.display(description="time zone")
    def time_zone(self, run: SyncRun) -> str:
        return settings.TIME_ZONE

    @admin.display(description="newest row stored (updated on Socrata)")
    def watermark_time(self, run: SyncRun) -> str:
        return local_time(run.watermark)

    fetched = _count_column("rows_fetched", "fetched")

    @admin.display(description="changed")
    def changed(self, run: SyncRun) -> str:
        return f"{run.rows_inserted + run.rows_updated + run.rows_deleted:,}"

    inserted = _count_column("rows_inserted", "inserted")
    updated = _count_column("rows_updated", "updated")
    unchanged = _count_column("rows_unchanged", "unchanged")
    deleted = _count_column("rows_deleted", "deleted")
    rejected = _count_column("rows_rejected", "rejected")

    @admin.display(description="warnings")
    def warning_list(self, run: SyncRun) -> str:
        if not run.warnings:
            return "None"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((w,) for w in run.warnings))
        )

    @admin.display(description="rejected rows (samples)")
    def rejections(self, run: SyncRun) -> str:
        if not run.rejection_samples:
            return "None"
        rows = (
            (sample.get("tree_id", "?"), sample.get("reason", sample))
            if isinstance(sample, dict)
            else ("?", sample)
            for sample in run.rejection_samples
        )
        return format_html("<ul>{}</ul>", format_html_join("", "<li>tree {}: {}</li>", rows))

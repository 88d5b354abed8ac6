"""Read-side queries shared by the admin and the API. No request objects here."""

from django.db import connection
from django.db.models import Q, QuerySet

from trees.models import Species, Tree


def search_trees(queryset: QuerySet[Tree], term: str) -> QuerySet[Tree]:
    """Trees whose id, ZIP code, address or species name matches `term`.

    Written by hand rather than with the admin's generic `search_fields` because an OR that
    joins the species table defeats every index: here each branch can use its own (primary
    key, ZIP code btree, address trigram, species id), so a search over 683,788 trees
    stays a few index scans instead of a sequential scan.
    """
    term = term.strip()
    if not term:
        return queryset
    matches = Q(address__icontains=term)
    if term.isdigit():
        if len(term) <= 18:  # fits a bigint
            matches |= Q(tree_id=int(term))
        if len(term) <= 5:
            matches |= Q(zipcode=term)
    species_ids = list(
        Species.objects.filter(
            Q(common_name__icontains=term) | Q(latin_name__icontains=term)
        ).values_list("id", flat=True)
    )
    if species_ids:
        matches |= Q(species_id__in=species_ids)
    return queryset.filter(matches)


def estimated_row_count(model: type[Tree]) -> int | None:
    """Postgres's own estimate of a table's rows: free, where `count(*)` scans the table.

    Returns None when the table has never been analysed, so callers fall back to counting.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    if row is None or row[0] < 0:
        return None
    return row[0]

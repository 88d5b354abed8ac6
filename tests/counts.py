"""TreeCount's and TreeGroupCount's rows beside the same counts taken from the trees: the two
must always agree."""

from django.db import connection

from trees.models import TreeGroupCount

KEY = "borough, status, health, species_id, tree_dbh"


def tree_counts() -> dict[tuple, int]:
    """TreeCount as {key: count}, leaving out the counts that fell to 0."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {KEY}, count FROM trees_treecount WHERE count <> 0")
        return {row[:-1]: row[-1] for row in cursor.fetchall()}


def counted_trees() -> dict[tuple, int]:
    """The trees, counted now by the same key."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {KEY}, count(*) FROM trees_tree GROUP BY {KEY}")
        return {row[:-1]: row[-1] for row in cursor.fetchall()}


GROUP_KEY = "column_name, value, tree_dbh"


def group_counts() -> dict[tuple, tuple[int, int, int]]:
    """TreeGroupCount as {(column, value, dbh): (count, poor, recorded)}, without the 0s."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {GROUP_KEY}, count, poor, recorded FROM trees_treegroupcount WHERE count <> 0"
        )
        return {row[:3]: row[3:] for row in cursor.fetchall()}


def counted_groups() -> dict[tuple, tuple[int, int, int]]:
    """The trees, counted now per column of TreeGroupCount.COLUMNS, value and diameter."""
    found = {}
    with connection.cursor() as cursor:
        for column in TreeGroupCount.COLUMNS:
            cursor.execute(
                f"SELECT {column}::text, tree_dbh, count(*), "
                "count(*) FILTER (WHERE health = 'Poor'), count(*) FILTER (WHERE health <> '') "
                f"FROM trees_tree GROUP BY 1, 2"
            )
            found.update({(column, *row[:2]): row[2:] for row in cursor.fetchall()})
    return found

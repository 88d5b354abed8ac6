"""TreeCount's rows beside the same counts taken from the trees: the two must always agree."""

from django.db import connection

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

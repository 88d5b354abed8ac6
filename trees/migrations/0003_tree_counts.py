"""TreeCount: trees per (borough, status, health, species, diameter), kept exact by triggers.

Statement-level triggers with transition tables: one aggregated upsert per statement, however
many rows it touched (a sync batch of 50,000 trees makes a few thousand count changes, not
50,000 trigger calls). Keys are upserted in sorted order, so two transactions changing counts
at once take their row locks in the same order. The trees already stored are counted here.
"""

import django.db.models.deletion
from django.db import migrations, models


KEY = "borough, status, health, species_id, tree_dbh"


def add_counts(changes: str) -> str:
    """Add the summed `change` of each key in `changes` (rows of KEY and change) to its count."""
    return f"""
        INSERT INTO trees_treecount AS counted ({KEY}, count)
        SELECT {KEY}, sum(change) FROM ({changes}) AS changes
        GROUP BY {KEY}
        HAVING sum(change) <> 0
        ORDER BY {KEY}
        ON CONFLICT ({KEY}) DO UPDATE SET count = counted.count + EXCLUDED.count;
    """


ADDED = f"SELECT {KEY}, 1 AS change FROM new_rows"
REMOVED = f"SELECT {KEY}, -1 AS change FROM old_rows"

# One branch per event: each reads only the transition tables its event has (PL/pgSQL plans
# a statement when it first runs it).
CREATE_TRIGGERS = f"""
CREATE FUNCTION trees_count_trees() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {add_counts(ADDED)}
    ELSIF TG_OP = 'DELETE' THEN
        {add_counts(REMOVED)}
    ELSE
        {add_counts(f"{ADDED} UNION ALL {REMOVED}")}
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION trees_count_no_trees() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trees_treecount;
    RETURN NULL;
END
$$;

CREATE TRIGGER trees_tree_count_inserts AFTER INSERT ON trees_tree
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_trees();
CREATE TRIGGER trees_tree_count_updates AFTER UPDATE ON trees_tree
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_trees();
CREATE TRIGGER trees_tree_count_deletes AFTER DELETE ON trees_tree
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_trees();
CREATE TRIGGER trees_tree_count_truncates AFTER TRUNCATE ON trees_tree
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_no_trees();

INSERT INTO trees_treecount ({KEY}, count)
SELECT {KEY}, count(*) FROM trees_tree GROUP BY {KEY};
"""

DROP_TRIGGERS = """
DROP TRIGGER trees_tree_count_truncates ON trees_tree;
DROP TRIGGER trees_tree_count_deletes ON trees_tree;
DROP TRIGGER trees_tree_count_updates ON trees_tree;
DROP TRIGGER trees_tree_count_inserts ON trees_tree;
DROP FUNCTION trees_count_no_trees();
DROP FUNCTION trees_count_trees();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("trees", "0002_sync_parse_functions"),
    ]

    operations = [
        migrations.CreateModel(
            name="TreeCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "borough",
                    models.CharField(
                        choices=[
                            ("Manhattan", "Manhattan"),
                            ("Bronx", "Bronx"),
                            ("Brooklyn", "Brooklyn"),
                            ("Queens", "Queens"),
                            ("Staten Island", "Staten Island"),
                        ],
                        max_length=13,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("Alive", "Alive"), ("Dead", "Dead"), ("Stump", "Stump")],
                        max_length=5,
                    ),
                ),
                (
                    "health",
                    models.CharField(
                        blank=True,
                        choices=[("Good", "Good"), ("Fair", "Fair"), ("Poor", "Poor")],
                        max_length=4,
                    ),
                ),
                ("tree_dbh", models.PositiveSmallIntegerField(null=True)),
                ("count", models.IntegerField()),
                (
                    "species",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="trees.species",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("borough", "status", "health", "species", "tree_dbh"),
                        name="treecount_unique_group",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.RunSQL(CREATE_TRIGGERS, DROP_TRIGGERS),
    ]

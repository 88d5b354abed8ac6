"""TreeGroupCount: trees per (group column, its value, diameter), kept exact by triggers.

As TreeCount's (migration 0003): statement-level triggers with transition tables, one
aggregated upsert per statement, keys upserted in sorted order. Each changed tree row counts
once per column of COLUMNS (unpivoted by a LATERAL VALUES list), so a statement's cost grows
with its rows, not with the number of columns' values. The trees already stored are counted
here. The column list is frozen in this migration; TreeGroupCount.COLUMNS must match it.
"""

from django.db import migrations, models

COLUMNS = (
    "nta",
    "zipcode",
    "steward",
    "guards",
    "curb_loc",
    "sidewalk",
    "user_type",
    "council_district",
    "community_board",
)
KEY = "column_name, value, tree_dbh"
# Each changed row's contribution to count, poor and recorded (health in the key instead would
# make a change of health move each row between two keys per column: twice the upserts).
CHANGES = "change, poor_change, recorded_change"
UNPIVOT = ", ".join(f"('{column}', rows.{column}::text)" for column in COLUMNS)


def counted(source: str, sign: str) -> str:
    """Rows of KEY and CHANGES: each row of `source` once per column, `sign` 1 or -1."""
    return (
        f"SELECT unpivoted.column_name, unpivoted.value, rows.tree_dbh, {sign} AS change, "
        f"CASE WHEN rows.health = 'Poor' THEN {sign} ELSE 0 END AS poor_change, "
        f"CASE WHEN rows.health <> '' THEN {sign} ELSE 0 END AS recorded_change "
        f"FROM {source} AS rows "
        f"CROSS JOIN LATERAL (VALUES {UNPIVOT}) AS unpivoted (column_name, value)"
    )


def add_counts(changes: str) -> str:
    return f"""
        INSERT INTO trees_treegroupcount AS counted ({KEY}, count, poor, recorded)
        SELECT {KEY}, sum(change), sum(poor_change), sum(recorded_change)
        FROM ({changes}) AS changes
        GROUP BY {KEY}
        HAVING sum(change) <> 0 OR sum(poor_change) <> 0 OR sum(recorded_change) <> 0
        ORDER BY {KEY}
        ON CONFLICT ({KEY}) DO UPDATE SET count = counted.count + EXCLUDED.count,
            poor = counted.poor + EXCLUDED.poor, recorded = counted.recorded + EXCLUDED.recorded;
    """


ADDED = counted("new_rows", "1")
REMOVED = counted("old_rows", "-1")

CREATE_TRIGGERS = f"""
CREATE FUNCTION trees_count_tree_groups() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION trees_count_no_tree_groups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trees_treegroupcount;
    RETURN NULL;
END
$$;

CREATE TRIGGER trees_tree_group_count_inserts AFTER INSERT ON trees_tree
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_tree_groups();
CREATE TRIGGER trees_tree_group_count_updates AFTER UPDATE ON trees_tree
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_tree_groups();
CREATE TRIGGER trees_tree_group_count_deletes AFTER DELETE ON trees_tree
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_tree_groups();
CREATE TRIGGER trees_tree_group_count_truncates AFTER TRUNCATE ON trees_tree
    FOR EACH STATEMENT EXECUTE FUNCTION trees_count_no_tree_groups();

INSERT INTO trees_treegroupcount ({KEY}, count, poor, recorded)
SELECT {KEY}, sum(change), sum(poor_change), sum(recorded_change)
FROM ({counted("trees_tree", "1")}) AS changes GROUP BY {KEY};
ANALYZE trees_treegroupcount;
"""

DROP_TRIGGERS = """
DROP TRIGGER trees_tree_group_count_truncates ON trees_tree;
DROP TRIGGER trees_tree_group_count_deletes ON trees_tree;
DROP TRIGGER trees_tree_group_count_updates ON trees_tree;
DROP TRIGGER trees_tree_group_count_inserts ON trees_tree;
DROP FUNCTION trees_count_no_tree_groups();
DROP FUNCTION trees_count_tree_groups();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("trees", "0005_tree_ordering_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="TreeGroupCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("column_name", models.CharField(max_length=16)),
                ("value", models.TextField(null=True)),
                ("tree_dbh", models.PositiveSmallIntegerField(null=True)),
                ("count", models.IntegerField()),
                ("poor", models.IntegerField()),
                ("recorded", models.IntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("column_name", "value", "tree_dbh"),
                        name="treegroupcount_unique_group",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.RunSQL(CREATE_TRIGGERS, DROP_TRIGGERS),
    ]

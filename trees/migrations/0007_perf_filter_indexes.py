"""Indexes for two-filter pages of trees/ (issue 11's "any filter combination" target).

A page is `WHERE a AND b ORDER BY tree_id LIMIT 51`. Without an index that holds the rarer
filter's trees in key order, Postgres walks the primary key testing each tree, which is quick
when matches are dense and reads all 683,788 trees when they are rare or none (0.3 to 1.2 s
measured with EXPLAIN ANALYZE for the pairs these indexes serve; see tree.Meta.indexes).
"""


import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trees', '0006_perf_group_counts'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='tree',
            name='tree_health_idx',
        ),
        migrations.RemoveIndex(
            model_name='tree',
            name='tree_status_idx',
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['health', 'tree_id'], name='tree_health_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['status', 'tree_id'], name='tree_status_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['nta', 'tree_id'], name='tree_nta_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['census_tract', 'tree_id'], name='tree_census_tract_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['community_board', 'tree_id'], name='tree_community_board_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(fields=['council_district', 'tree_id'], name='tree_council_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('steward', '3or4'), ('steward', '4orMore'), _connector='OR'), fields=['tree_id'], name='tree_steward_rare_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('guards', 'Harmful'), ('guards', 'Unsure'), _connector='OR'), fields=['tree_id'], name='tree_guards_rare_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('curb_loc', 'OffsetFromCurb')), fields=['tree_id'], name='tree_curb_offset_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('root_stone', True)), fields=['tree_id'], name='tree_root_stone_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('root_grate', True)), fields=['tree_id'], name='tree_root_grate_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('root_other', True)), fields=['tree_id'], name='tree_root_other_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('trunk_wire', True)), fields=['tree_id'], name='tree_trunk_wire_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('trnk_light', True)), fields=['tree_id'], name='tree_trnk_light_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('trnk_other', True)), fields=['tree_id'], name='tree_trnk_other_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('brch_light', True)), fields=['tree_id'], name='tree_brch_light_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('brch_shoe', True)), fields=['tree_id'], name='tree_brch_shoe_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=models.Index(condition=models.Q(('brch_other', True)), fields=['tree_id'], name='tree_brch_other_idx'),
        ),
        migrations.AddIndex(
            model_name='tree',
            index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper('problems'), name='gin_trgm_ops'), name='tree_problems_trgm_idx'),
        ),
    ]

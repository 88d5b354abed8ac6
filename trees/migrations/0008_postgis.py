"""PostGIS: a point for every tree, and its GiST index, which replaces the (latitude,
longitude) btree for `bbox` and `near`.

The point is a stored generated column, so it can never disagree with latitude/longitude,
whoever writes them (the sync's COPY and upserts, a first load's table built LIKE this one,
the admin). It is plain SQL rather than a GeoDjango field: nothing in Python reads the
geometry (the API keeps returning latitude/longitude), and GeoDjango would bring GDAL and
GEOS into the image and a different database backend for one index (README "PostGIS").
"""

from django.contrib.postgres.operations import CreateExtension
from django.db import migrations

ADD_LOCATION = """
ALTER TABLE trees_tree ADD COLUMN location geometry(Point, 4326)
    GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)) STORED;
CREATE INDEX tree_location_gist ON trees_tree USING gist (location);
"""

DROP_LOCATION = """
DROP INDEX tree_location_gist;
ALTER TABLE trees_tree DROP COLUMN location;
"""


class Migration(migrations.Migration):
    dependencies = [("trees", "0007_perf_filter_indexes")]

    operations = [
        CreateExtension("postgis"),
        migrations.RunSQL(ADD_LOCATION, DROP_LOCATION),
        migrations.RemoveIndex(model_name="tree", name="tree_location_idx"),
    ]

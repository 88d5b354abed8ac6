"""SQL helpers the sync's loader uses to type SODA's strings inside Postgres.

The loader checks the common shapes with a regular expression and casts directly; only
values that could be invalid dates (days 29 to 31, US-style dates, odd timestamps) reach
these functions. They return NULL instead of raising, so one bad value rejects one row
rather than aborting the statement and with it the whole page.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION trees_parse_date(value text) RETURNS date
LANGUAGE plpgsql STABLE PARALLEL SAFE STRICT AS $$
DECLARE
    parts text[];
BEGIN
    -- ISO (2015-08-27, 2015-08-27T00:00:00.000) or US style (08/27/2015, 8/27/2015 12:00 AM).
    parts := regexp_match(value, '^(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]*)?Z?$');
    IF parts IS NULL THEN
        parts := regexp_match(value, '^(\d{1,2})/(\d{1,2})/(\d{4})(?: .*)?$');
        IF parts IS NULL THEN
            RETURN NULL;
        END IF;
        parts := ARRAY[parts[3], parts[1], parts[2]];
    END IF;
    IF parts[1]::int NOT BETWEEN 1800 AND 2200 THEN
        RETURN NULL;
    END IF;
    RETURN make_date(parts[1]::int, parts[2]::int, parts[3]::int);
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
    OR numeric_value_out_of_range THEN
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION trees_parse_timestamp(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE STRICT AS $$
BEGIN
    -- Socrata's system fields are UTC: 2023-10-09T10:02:32.402Z (the Z is sometimes left off).
    IF value !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z?$' THEN
        RETURN NULL;
    END IF;
    RETURN (rtrim(value, 'Z') || '+00')::timestamptz;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
    OR numeric_value_out_of_range THEN
    RETURN NULL;
END
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS trees_parse_date(text);
DROP FUNCTION IF EXISTS trees_parse_timestamp(text);
"""


class Migration(migrations.Migration):
    dependencies = [("trees", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]

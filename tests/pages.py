"""Build SODA pages (CSV or JSON bytes) from rows, for loader and sync tests."""

import csv
import io
import json

from trees.socrata import Page


def csv_page(rows: list[dict[str, str]], *, offset: int = 0, fields=None) -> Page:
    fields = tuple(fields or dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([row.get(name, "") for name in fields])
    return Page(
        offset=offset,
        row_count=len(rows),
        fields=fields,
        body=out.getvalue().encode(),
        format="csv",
    )


def json_page(rows: list[dict[str, str]], *, offset: int = 0, fields=None) -> Page:
    fields = tuple(fields or dict.fromkeys(key for row in rows for key in row))
    return Page(
        offset=offset,
        row_count=len(rows),
        fields=fields,
        body=json.dumps(rows).encode(),
        format="json",
    )

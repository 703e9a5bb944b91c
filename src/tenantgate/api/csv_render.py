"""Rows of dicts as CSV, for the `format=csv` variants of reports and invoices."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import orjson
from starlette.responses import Response


def _cell(value: object) -> object:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def csv_response(rows: Iterable[dict[str, object]], columns: Sequence[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)

"""Many rows into one table, by unique key, for the writers on a hot path (judge and generation
jobs, suggestions): the ORM's bulk_create costs ~0.3-0.5 ms of CPU per row on PostgreSQL here (Django
builds one array per column and psycopg's client-side binding quotes each element in Python).

    n = rows_upsert(model=JudgeVerdict, columns=["job_id", "record_id", ...], rows=[(...), ...],
                    conflict=["job_id", "record_id"], update=None)      # ON CONFLICT DO NOTHING

PostgreSQL: COPY into a session temp table shaped like the target's columns, then one
INSERT .. SELECT .. ON CONFLICT from it (~3 µs of client CPU per row). Elsewhere (SQLite): one
executemany of INSERT .. ON CONFLICT. Values must be ready for the database: JSON columns as JSON
text (json_text), timestamps as datetimes, None for NULL. Rows must not repeat a conflict key.
Returns the rows inserted or updated (DO NOTHING: inserted only).

    Record.objects.filter(IdsIn("pk", ids))     # like pk__in=ids, for thousands of ids

IdsIn sends the ids as ONE parameter (a PostgreSQL array, a JSON list on SQLite) instead of one
placeholder each: Django prepares each value of an `__in` list on its own (~6-10 µs per id here).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import BooleanField, Expression, F, Model


def json_text(value: Any) -> str | None:
    """A JSON column's value as the text rows_upsert takes (None stays SQL NULL)."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def rows_upsert(*, model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]],
                conflict: Sequence[str], update: Sequence[str] | None) -> int:
    """Insert `rows` (tuples in the order of `columns`); on a conflict on `conflict` update the
    `update` columns from the new row, or leave the stored row as it is when `update` is None."""
    if not rows:
        return 0
    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    target = ", ".join(connection.ops.quote_name(c) for c in conflict)
    if update:
        action = "DO UPDATE SET " + ", ".join(f"{connection.ops.quote_name(c)} = EXCLUDED.{connection.ops.quote_name(c)}"
                                              for c in update)
    else:
        action = "DO NOTHING"
    if connection.vendor != "postgresql":
        adapt = connection.ops.adapt_datetimefield_value
        from datetime import datetime

        values = [tuple(adapt(v) if isinstance(v, datetime) else v for v in row) for row in rows]
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT ({target}) {action}"
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.executemany(sql, values)
            return max(cursor.rowcount, 0)
    stage = "preflab_stage_" + hashlib.sha1(f"{table}|{cols}".encode()).hexdigest()[:16]
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # shaped like the target's columns (types only, no constraints); one per session, emptied per use
        # (two statements, one round trip: no parameters, and Django's PostgreSQL cursors bind client-side)
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {cols} FROM {table} WITH NO DATA; "
                       f"TRUNCATE {stage}")
        with cursor.cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({target}) {action}")
        return max(cursor.rowcount, 0)


class IdsIn(Expression):
    """A filter: `field` is one of the integer `ids` (an empty list matches nothing)."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, field: str, ids):
        super().__init__()
        self.lhs = F(field)
        # an id no bigint can hold matches no row (and must not make the array cast fail)
        self.ids = [i for i in map(int, ids) if -(2**63) <= i < 2**63]

    def get_source_expressions(self):
        return [self.lhs]

    def set_source_expressions(self, exprs):
        (self.lhs,) = exprs

    def as_sql(self, compiler, connection):
        sql, params = compiler.compile(self.lhs)
        listed = ",".join(map(str, self.ids))
        if connection.vendor == "postgresql":
            return f"{sql} = ANY(%s::bigint[])", [*params, "{" + listed + "}"]
        return f"{sql} IN (SELECT value FROM json_each(%s))", [*params, "[" + listed + "]"]

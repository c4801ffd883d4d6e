"""Migration 0011: the response table's redundant foreign-key indexes go, and (dataset, id) comes, without a
table lock on PostgreSQL (built and dropped CONCURRENTLY, outside a transaction)."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

OLD = {"annotation_response_record_id_c1e324a8", "annotation_response_user_id_1cda4e20",
       "annotation_response_dataset_id_9f9de533"}
NEW = "response_dataset_id_idx"


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "annotation_response")
    return {name for name, c in constraints.items() if c["index"]}


def _migrate(target: str) -> list[str]:
    executor = MigrationExecutor(connection)
    with CaptureQueriesContext(connection) as queries:
        executor.migrate([("annotation", target)])
    return [q["sql"] for q in queries.captured_queries if "INDEX" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_the_response_indexes_are_swapped_both_ways_without_locking_the_table(require_postgres):
    try:
        back = _migrate("0010_record_fields_lz4")
        assert OLD <= _indexes() and NEW not in _indexes()
        forward = _migrate("0011_response_indexes")
        assert not OLD & _indexes() and NEW in _indexes()
    finally:
        _migrate("0011_response_indexes")  # the schema the other tests run on, whatever happened above
    for statements in (back, forward):
        assert len(statements) == 4
        assert all(" CONCURRENTLY " in sql for sql in statements), statements
    assert forward[0].startswith(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NEW}")  # built before the old ones go

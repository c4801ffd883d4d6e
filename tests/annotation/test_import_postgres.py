"""One batch written with COPY on PostgreSQL (annotation.imports.postgres): the dataset's foreign key checked once per batch."""
import pytest
from django.db import IntegrityError, connection

from annotation.imports import records_batch_upsert
from annotation.models import Dataset, Record
from tests.factories import DatasetFactory


def row(eid):
    return {"external_id": eid, "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}, "metadata": {},
            "priority": 0.0}


def test_an_insert_into_the_record_table_fires_only_the_dataset_foreign_key_check(require_postgres):
    """The import checks this foreign key once per batch and skips the per-row triggers (postgres.
    _dataset_fk_checked_by_batch): a new trigger on insert must be checked there too."""
    with connection.cursor() as cursor:
        cursor.execute("""SELECT t.tgfoid::regproc::text, c.confrelid::regclass::text, array_to_string(c.conkey, ',')
                          FROM pg_trigger t LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint
                          WHERE t.tgrelid = 'annotation_record'::regclass AND t.tgtype & 4 <> 0""")  # 4: on INSERT
        triggers = cursor.fetchall()
        cursor.execute("SELECT attnum::text FROM pg_attribute WHERE attrelid = 'annotation_record'::regclass "
                       "AND attname = 'dataset_id'")
        dataset_column = cursor.fetchone()[0]
    assert triggers == [('"RI_FKey_check_ins"', "annotation_dataset", dataset_column)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("by_batch", [True, False], ids=["checked-per-batch", "per-row-triggers"])
def test_a_batch_for_a_dataset_that_is_gone_stores_nothing(require_postgres, monkeypatch, by_batch):
    ds = DatasetFactory()
    if not by_batch:  # as for a database user that is not a superuser
        monkeypatch.setattr("annotation.imports.postgres._dataset_fk_checked_by_batch", lambda cursor, dataset: False)
    gone = Dataset(pk=ds.pk + 1000, workspace=ds.workspace, name="gone")
    with pytest.raises(IntegrityError):
        records_batch_upsert(dataset=gone, rows=[row("a"), row("b")])
    assert not Record.objects.filter(dataset_id=gone.pk).exists()
    assert records_batch_upsert(dataset=ds, rows=[row("a"), row("b")]).created == 2


def test_triggers_fire_again_after_the_batch(require_postgres):
    ds = DatasetFactory()
    records_batch_upsert(dataset=ds, rows=[row("a")])
    records_batch_upsert(dataset=ds, rows=[row("a"), row("b")])  # the update path too
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
    assert Record.objects.filter(dataset=ds).count() == 2


def test_a_records_fields_are_stored_with_lz4(require_postgres):
    """Migration 0010: a record above the TOAST threshold is compressed with lz4 (pglz took half the database's
    CPU of an import), both through the import's COPY and through the ORM, and reads back whole."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        if not cursor.fetchone()[0]:
            pytest.skip("this PostgreSQL is built without lz4: the migration keeps the default")
    ds = DatasetFactory()
    text = " ".join(f"word{i % 997} text{i % 13}" for i in range(1500))  # ~20 KB, compressible
    big = {"external_id": "big", "fields": {"prompt": "p", "response-1": text, "response-2": text[::-1]},
           "metadata": {}, "priority": 0.0}
    records_batch_upsert(dataset=ds, rows=[big])
    orm = Record.objects.create(dataset=ds, external_id="orm", fields={"prompt": "p", "response-1": text,
                                                                     "response-2": "b"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT external_id, pg_column_compression(fields) FROM annotation_record WHERE dataset_id = %s "
                       "ORDER BY external_id", [ds.pk])
        assert cursor.fetchall() == [("big", "lz4"), ("orm", "lz4")]
    assert Record.objects.get(dataset=ds, external_id="big").fields["response-1"] == text
    assert Record.objects.get(pk=orm.pk).fields["response-1"] == text

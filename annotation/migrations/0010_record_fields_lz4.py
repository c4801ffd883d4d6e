from django.db import migrations

# A record's fields (a prompt and its responses: a few KB of JSON) pass PostgreSQL's TOAST threshold (2 KB),
# so every stored record is compressed. PostgreSQL's default, pglz, took about half of the database's CPU of
# an import (bench_import at 1M records, same minutes: 81-90 us per record with pglz, 39-42 with lz4) and
# decompresses more slowly on every read (export, next). lz4 stores about a third more bytes. Values already
# stored keep their compression until they are written again; servers before PostgreSQL 14, or built without
# lz4, keep the default (nothing changes there).


def _lz4_available(schema_editor) -> bool:
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
    return bool(row and row[0])


def fields_lz4(apps, schema_editor):
    if _lz4_available(schema_editor):
        schema_editor.execute("ALTER TABLE annotation_record ALTER COLUMN fields SET COMPRESSION lz4")


def fields_default(apps, schema_editor):
    if _lz4_available(schema_editor):
        schema_editor.execute("ALTER TABLE annotation_record ALTER COLUMN fields SET COMPRESSION DEFAULT")


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0009_record_dataset_fk_without_own_index"),
    ]

    operations = [
        migrations.RunPython(fields_lz4, fields_default, elidable=False),
    ]

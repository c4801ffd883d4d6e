from django.conf import settings
from django.db import migrations, models

# The response table's foreign keys each had an index of their own, and each was the first column of
# another index too: record (uniq_response: record, user), user (response_history_idx: user, dataset,
# updated_at), dataset (response_user_idx and response_status_idx). Each cost an index entry on every
# write of a response (a submit that changes a draft's status writes a new row version into every
# index), and the planner never used the record and user ones. The dataset's own index becomes
# (dataset, id): the one a dataset's responses are read in id order from (the responses export pages
# through them; from the single-column index or the primary key it stepped over every older dataset's
# responses before its first row). The foreign keys stay; only their indexes go, dropped by name rather
# than by AlterField, which would drop and add each foreign key again (checking every row).
#
# On PostgreSQL the index is built and the old ones dropped CONCURRENTLY, outside a transaction
# (atomic = False): a plain CREATE INDEX would block every submit for as long as the build of a big
# table takes, and a DROP INDEX in the same transaction would hold its exclusive lock until the end.
NEW = "response_dataset_id_idx"
DROPPED = {
    "record": ("annotation_response_record_id_c1e324a8", "record_id"),
    "user": ("annotation_response_user_id_1cda4e20", "user_id"),
    "dataset": ("annotation_response_dataset_id_9f9de533", "dataset_id"),
}
RELATED = {"record": ("annotation.record", "responses"), "user": (settings.AUTH_USER_MODEL, "preflab_responses"),
           "dataset": ("annotation.dataset", "responses")}


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def indexes_swap(apps, schema_editor):
    how = _concurrently(schema_editor)
    schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {NEW} ON annotation_response (dataset_id, id)")
    for name, _column in DROPPED.values():
        schema_editor.execute(f"DROP INDEX{how} IF EXISTS {name}")


def indexes_back(apps, schema_editor):
    how = _concurrently(schema_editor)
    for name, column in DROPPED.values():
        schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {name} ON annotation_response ({column})")
    schema_editor.execute(f"DROP INDEX{how} IF EXISTS {NEW}")


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ("annotation", "0010_record_fields_lz4"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *[migrations.AlterField(
                    model_name="response",
                    name=field,
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name=RELATED[field][1], to=RELATED[field][0]),
                ) for field in DROPPED],
                migrations.AddIndex(
                    model_name="response",
                    index=models.Index(fields=["dataset", "id"], name=NEW),
                ),
            ],
            database_operations=[migrations.RunPython(indexes_swap, indexes_back)],
        ),
    ]

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
DROPPED = {
    "record": ("annotation_response_record_id_c1e324a8", "record_id"),
    "user": ("annotation_response_user_id_1cda4e20", "user_id"),
    "dataset": ("annotation_response_dataset_id_9f9de533", "dataset_id"),
}
RELATED = {"record": ("annotation.record", "responses"), "user": (settings.AUTH_USER_MODEL, "preflab_responses"),
           "dataset": ("annotation.dataset", "responses")}


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0010_record_fields_lz4"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="response",
                    name=field,
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name=RELATED[field][1], to=RELATED[field][0]),
                )
                for field in DROPPED
            ],
            database_operations=[
                migrations.RunSQL(f"DROP INDEX IF EXISTS {name}",
                                  f"CREATE INDEX IF NOT EXISTS {name} ON annotation_response ({column})")
                for name, column in DROPPED.values()
            ],
        ),
        migrations.AddIndex(
            model_name="response",
            index=models.Index(fields=["dataset", "id"], name="response_dataset_id_idx"),
        ),
    ]

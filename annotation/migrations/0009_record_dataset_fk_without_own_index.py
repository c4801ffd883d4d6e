from django.db import migrations, models

# The record table's own index on dataset_id: every other index of the table starts with the dataset,
# so it only cost an index insertion per imported row. Dropped by name rather than by AlterField, which
# would drop and add the foreign key again (checking every row of a big table).
INDEX = "annotation_record_dataset_id_79ab3f67"


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0008_campaign_quality"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="record",
                    name="dataset",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name="records",
                                            to="annotation.dataset"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f"DROP INDEX IF EXISTS {INDEX}",
                                  f"CREATE INDEX IF NOT EXISTS {INDEX} ON annotation_record (dataset_id)"),
            ],
        ),
    ]

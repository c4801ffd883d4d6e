"""What every job API shares: the output serializer of annotation.job_selectors.job_status.

The job APIs of the kinds (generation's /generation-jobs/, judging's /judge-jobs/) subclass it with
their own fields; their cancel and resume endpoints call the one job mechanism (annotation.jobs).
"""
from rest_framework import serializers

from .models import Job


class JobStatusOutputSerializer(serializers.Serializer):
    """annotation.job_selectors.job_status, less `rate` (each kind names its throughput)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Job.Status.choices,
        help_text="queued or running; then succeeded (no item failed), partly_failed (some items failed: the "
                  "others were written), failed (every item failed, or the job stopped on an error: see `error`; "
                  "resumable) or cancelled (stopped by a user; resumable)")
    workspace = serializers.IntegerField()
    dataset = serializers.IntegerField(allow_null=True)
    dataset_name = serializers.CharField(allow_null=True)
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    progress = serializers.FloatField()
    tokens = serializers.IntegerField()
    error = serializers.CharField()
    summary = serializers.CharField(help_text="one line in the kind's words, e.g. "
                                              "'judge job 12 failed: 0 records judged, 10 failed (of 10)'")
    result = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    last_errors = serializers.ListField(child=serializers.JSONField())
    requeues = serializers.ListField(
        child=serializers.JSONField(),
        help_text="chunks the stall sweep re-queued (no heartbeat: their worker was lost) or gave up, oldest first: "
                  "{chunk, at, requeues, note}, e.g. note 'chunk 3 re-queued at 05:12:03 UTC: no heartbeat for 94 s "
                  "(worker lost)'")

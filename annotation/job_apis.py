"""What every job API shares: the output serializer of annotation.job_selectors.job_status.

The job APIs of the kinds (generation's /generation-jobs/, judging's /judge-jobs/) subclass it with
their own fields; their cancel and resume endpoints call the one job mechanism (annotation.jobs).
"""
from rest_framework import serializers


class JobStatusOutputSerializer(serializers.Serializer):
    """annotation.job_selectors.job_status, less `rate` (each kind names its throughput)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    workspace = serializers.IntegerField()
    dataset = serializers.IntegerField(allow_null=True)
    dataset_name = serializers.CharField(allow_null=True)
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    progress = serializers.FloatField()
    tokens = serializers.IntegerField()
    error = serializers.CharField()
    result = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    last_errors = serializers.ListField(child=serializers.JSONField())

"""REST API of the judging app (DRF): judges, judge jobs, the cleaning view. Workspace admins only;
an object of a workspace the caller is not a member of answers 404, an annotator gets 403."""
from __future__ import annotations

from dataclasses import asdict

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.access import ADMIN, dataset_for_user, job_for_user, workspace_for_user
from annotation.api_common import StrictInputSerializer, bool_param, broker_down_response, validated_input
from annotation.job_apis import JobStatusOutputSerializer
from annotation.jobs import job_cancel, job_resume
from annotation.models import Dataset
from generation.models import Endpoint

from . import selectors, services
from .models import Judge


class JudgeOutputSerializer(serializers.ModelSerializer):
    endpoint_name = serializers.CharField(source="endpoint.name", read_only=True)
    model = serializers.CharField(source="endpoint.model", read_only=True)
    agent = serializers.CharField(read_only=True)

    class Meta:
        model = Judge
        ref_name = "Judge"
        fields = ["id", "workspace", "name", "method", "endpoint", "endpoint_name", "model", "agent", "aspect",
                  "overall_mode", "template", "params", "max_parse_retries", "use_structured_output",
                  "position_bias", "created_at", "updated_at"]


class _JudgeFields(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    endpoint = serializers.CharField(help_text="Endpoint id or name (same workspace)")
    method = serializers.ChoiceField(choices=Judge.Method.choices, required=False)
    aspect = serializers.ChoiceField(choices=Judge.Aspect.choices, required=False)
    overall_mode = serializers.ChoiceField(choices=Judge.OverallMode.choices, required=False)
    template = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    params = serializers.JSONField(required=False)
    max_parse_retries = serializers.IntegerField(required=False)
    use_structured_output = serializers.BooleanField(required=False)


def _endpoint_of(workspace_id: int, ref) -> Endpoint:
    qs = Endpoint.objects.filter(workspace_id=workspace_id)
    endpoint = qs.filter(pk=int(ref)).first() if str(ref).isdigit() else qs.filter(name=str(ref)).first()
    if endpoint is None:
        raise DjangoValidationError({"endpoint": f"no endpoint {ref!r} in this workspace"})
    return endpoint


class JudgeListCreateApi(APIView):
    class InputSerializer(_JudgeFields):
        workspace = serializers.IntegerField()

        class Meta:
            ref_name = "JudgeCreateInput"

    @extend_schema(parameters=[OpenApiParameter("workspace", int)], responses=JudgeOutputSerializer(many=True))
    def get(self, request):
        qs = selectors.judges_for_user(request.user, workspace_id=request.query_params.get("workspace"))
        return ApiResponse(JudgeOutputSerializer(qs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: JudgeOutputSerializer})
    def post(self, request):
        data = validated_input(self.InputSerializer, request.data)
        workspace = workspace_for_user(request.user, data.pop("workspace"), role=ADMIN)
        data["endpoint"] = _endpoint_of(workspace.pk, data["endpoint"])
        judge = services.judge_create(workspace=workspace, **data)
        return ApiResponse(JudgeOutputSerializer(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    class InputSerializer(_JudgeFields):
        name = serializers.CharField(max_length=100, required=False)
        endpoint = serializers.CharField(required=False)

        class Meta:
            ref_name = "JudgeUpdateInput"

    @extend_schema(responses=JudgeOutputSerializer)
    def get(self, request, judge_id: int):
        return ApiResponse(JudgeOutputSerializer(selectors.judge_for_user(request.user, judge_id)).data)

    @extend_schema(request=InputSerializer, responses=JudgeOutputSerializer)
    def patch(self, request, judge_id: int):
        judge = selectors.judge_for_user(request.user, judge_id)
        data = validated_input(self.InputSerializer, request.data)
        if "endpoint" in data:
            data["endpoint"] = _endpoint_of(judge.workspace_id, data["endpoint"])
        judge = services.judge_update(judge=judge, **data)
        return ApiResponse(JudgeOutputSerializer(judge).data)

    @extend_schema(responses={204: None})
    def delete(self, request, judge_id: int):
        services.judge_delete(judge=selectors.judge_for_user(request.user, judge_id))
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


class _JobStatus(JobStatusOutputSerializer):
    judge = serializers.IntegerField()
    judge_name = serializers.CharField()
    method = serializers.CharField()
    agent = serializers.CharField()
    aspect = serializers.CharField()
    target_dataset = serializers.IntegerField(allow_null=True)
    records_per_second = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "JudgeJobStatus"


def JobStatusSerializer(many: bool = False):  # noqa: N802 - reads like a serializer class in the schema decorators
    return _JobStatus(many=many)


class JudgeJobListCreateApi(APIView):
    class InputSerializer(StrictInputSerializer):
        dataset = serializers.IntegerField()
        judge = serializers.CharField(help_text="Judge id or name (same workspace)")
        records = serializers.ListField(child=serializers.IntegerField(), required=False, allow_empty=False,
                                        help_text="Record ids; all records when left out")
        target_dataset = serializers.CharField(required=False, help_text="CLAIR: target dataset id or a new name")
        answer_field = serializers.CharField(required=False, help_text="CLAIR: the field holding the answer to revise")
        chunk_size = serializers.IntegerField(required=False)

        class Meta:
            ref_name = "JudgeJobCreateInput"

    @extend_schema(parameters=[OpenApiParameter("workspace", int), OpenApiParameter("dataset", int)],
                   responses=JobStatusSerializer(many=True))
    def get(self, request):
        jobs = selectors.judge_jobs_for_user(request.user, workspace_id=request.query_params.get("workspace"),
                                             dataset_id=request.query_params.get("dataset"))[:200]
        return ApiResponse([selectors.judge_job_status(j, errors=0) for j in jobs])

    @extend_schema(request=InputSerializer, responses={201: JobStatusSerializer(), 503: broker_down_response()},
                   description="Judge a dataset's records (all, or `records`): suggestions and priorities are "
                               "written as the job runs. CLAIR judges write revision pairs to `target_dataset`.")
    def post(self, request):
        data = validated_input(self.InputSerializer, request.data)
        dataset = dataset_for_user(request.user, data["dataset"], role=ADMIN)
        ref = data["judge"]
        judges = Judge.objects.filter(workspace_id=dataset.workspace_id).select_related("endpoint")
        judge = judges.filter(pk=int(ref)).first() if ref.isdigit() else judges.filter(name=ref).first()
        if judge is None:
            raise DjangoValidationError({"judge": f"no judge {ref!r} in this workspace"})
        target = data.get("target_dataset")
        if target is not None and target.isdigit():
            target = Dataset.objects.filter(pk=int(target), workspace_id=dataset.workspace_id).first()
            if target is None:
                raise DjangoValidationError({"target_dataset": "no such dataset in this workspace"})
        job = services.judge_job_create(workspace=dataset.workspace, dataset=dataset, judge=judge,
                                        records=data.get("records"), created_by=request.user, target_dataset=target,
                                        answer_field=data.get("answer_field"), chunk_size=data.get("chunk_size"))
        return ApiResponse(selectors.judge_job_status(job), status=status.HTTP_201_CREATED)


class JudgeJobDetailApi(APIView):
    @extend_schema(responses=JobStatusSerializer(), description="Live status: counters, rate, tokens, last errors.")
    def get(self, request, job_id: int):
        return ApiResponse(selectors.judge_job_status(job_for_user(request.user, job_id, kind=selectors.JOB_KIND)))


class JudgeJobCancelApi(APIView):
    @extend_schema(request=None, responses=JobStatusSerializer())
    def post(self, request, job_id: int):
        job = job_cancel(job=job_for_user(request.user, job_id, kind=selectors.JOB_KIND))
        return ApiResponse(selectors.judge_job_status(job))


class JudgeJobResumeApi(APIView):
    @extend_schema(request=None, responses=JobStatusSerializer())
    def post(self, request, job_id: int):
        job = job_resume(job=job_for_user(request.user, job_id, kind=selectors.JOB_KIND))
        return ApiResponse(selectors.judge_job_status(job))


class CleaningFlipsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("agent", str), OpenApiParameter("min_margin", float),
                    OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=inline_serializer("CleaningFlips", fields={
            "dataset": serializers.IntegerField(), "judged": serializers.IntegerField(),
            "flips": serializers.IntegerField(), "matching": serializers.IntegerField(),
            "agents": serializers.ListField(child=serializers.CharField()),
            "results": serializers.ListField(child=serializers.JSONField()),
            "export_url": serializers.CharField()}),
        description="Records imported with import_pairs where a judge prefers the originally rejected "
                    "response, most confident first; export_url downloads the cleaned set (triplets from "
                    "suggestions).")
    def get(self, request, dataset_id: int):
        dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
        q = request.query_params
        agent = q.get("agent") or None
        try:
            min_margin = float(q["min_margin"]) if q.get("min_margin") not in (None, "") else None
        except ValueError:
            raise DjangoValidationError({"min_margin": "must be a number"})
        try:
            limit = min(1000, max(1, int(q.get("limit", 100))))
            offset = max(0, int(q.get("offset", 0)))
        except ValueError:
            raise DjangoValidationError({"limit": "limit and offset must be integers"})
        page = selectors.cleaning_page(dataset=dataset, agent=agent, min_margin=min_margin, offset=offset, limit=limit)
        page["results"] = [asdict(f) for f in page["results"]]
        return ApiResponse({"dataset": dataset.pk, **page,
                            "export_url": cleaned_export_url(dataset, min_margin=min_margin)})


def cleaned_export_url(dataset: Dataset, *, min_margin: float | None = None, fmt: str = "jsonl") -> str:
    """The triplet export of the judge's view of the set (annotation's export with source=suggestions)."""
    url = reverse("api-dataset-triplets", kwargs={"dataset_id": dataset.pk}) + f"?source=suggestions&format={fmt}"
    if min_margin is not None:
        url += f"&min_margin={min_margin:g}"
    return url


class JudgeJobOutputsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("record", int), OpenApiParameter("errors", bool,
                                                                      description="only outputs that failed to parse"),
                    OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=inline_serializer("JudgeOutputs", fields={
            "count": serializers.IntegerField(), "results": serializers.ListField(child=serializers.JSONField())}),
        description="The judge's raw outputs of a job, what was parsed from them, or why they could not be "
                    "read (with the earlier failed attempts); `text_cleaned` says what was removed from an output "
                    "PostgreSQL could not store (NUL characters, lone surrogates), null when nothing was.")
    def get(self, request, job_id: int):
        job = job_for_user(request.user, job_id, kind=selectors.JOB_KIND)
        q = request.query_params
        record = q.get("record")
        if record not in (None, "") and not str(record).isdigit():
            raise DjangoValidationError({"record": "must be a record id"})
        qs = selectors.judge_job_outputs(job=job, record_id=int(record) if record else None)
        if bool_param("errors", q.get("errors")):
            qs = qs.exclude(error="")
        try:
            limit = min(500, max(1, int(q.get("limit", 100))))
            offset = max(0, int(q.get("offset", 0)))
        except ValueError:
            raise DjangoValidationError({"limit": "limit and offset must be integers"})
        rows = qs.select_related("record")[offset:offset + limit]
        return ApiResponse({"count": qs.count(), "results": [
            {"record": o.record_id, "external_id": o.record.external_id, "call_key": o.call_key,
             "shown_order": o.shown_order, "raw_text": o.raw_text, "parsed": o.parsed, "error": o.error,
             "attempts": o.attempts, "failed_attempts": o.failed_attempts, "finish_reason": o.finish_reason,
             "prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens,
             "text_cleaned": o.text_cleaned} for o in rows]})

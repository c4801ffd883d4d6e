"""REST API of the generation app (DRF): endpoints and generation jobs, workspace admins only.

An object of a workspace the caller is not a member of answers 404; an annotator gets 403.
Endpoints store the NAME of the environment variable holding an API key, never a key.
"""
from __future__ import annotations

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.access import ADMIN, job_for_user, workspace_for_user
from annotation.api_common import StrictInputSerializer, broker_down_response, validated_input
from annotation.job_apis import JobStatusOutputSerializer
from annotation.jobs import job_cancel
from annotation.models import Dataset

from . import selectors, services
from .models import Endpoint

KEY_FIELDS = {"api_key", "key", "token", "secret", "apikey", "password"}


def _input_without_api_keys(serializer_class, data) -> dict:
    """validated_input, after refusing any key that looks like an API key (keys are never stored)."""
    if hasattr(data, "keys"):
        for key in data.keys():
            if key.lower() in KEY_FIELDS:
                raise DjangoValidationError({key: "API keys are never stored: set the key in an environment variable "
                                                  "of the worker and give its NAME in api_key_env"})
    return validated_input(serializer_class, data)


class EndpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        ref_name = "Endpoint"
        fields = ["id", "workspace", "name", "backend", "base_url", "model", "api_key_env", "max_concurrency",
                  "params", "system_prompt", "queue", "timeout", "max_retries", "supports_json_schema",
                  "created_at", "updated_at"]


class _EndpointFields(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    backend = serializers.ChoiceField(choices=Endpoint.Backend.choices, required=False)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    model = serializers.CharField(max_length=300)
    api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
    max_concurrency = serializers.IntegerField(required=False)
    params = serializers.JSONField(required=False)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    queue = serializers.CharField(max_length=64, required=False, allow_blank=True)
    timeout = serializers.FloatField(required=False)
    max_retries = serializers.IntegerField(required=False)
    supports_json_schema = serializers.BooleanField(required=False)


class EndpointListCreateApi(APIView):
    class InputSerializer(_EndpointFields):
        workspace = serializers.IntegerField()

        class Meta:
            ref_name = "EndpointCreateInput"

    @extend_schema(parameters=[OpenApiParameter("workspace", int)], responses=EndpointOutputSerializer(many=True),
                   description="Endpoints of the workspaces the caller administers.")
    def get(self, request):
        qs = selectors.endpoints_for_user(request.user, workspace_id=request.query_params.get("workspace"))
        return ApiResponse(EndpointOutputSerializer(qs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: EndpointOutputSerializer},
                   description="Add a model endpoint (workspace admin). api_key_env is the NAME of an "
                               "environment variable of the workers; keys are never stored.")
    def post(self, request):
        data = _input_without_api_keys(self.InputSerializer, request.data)
        workspace = workspace_for_user(request.user, data.pop("workspace"), role=ADMIN)
        endpoint = services.endpoint_create(workspace=workspace, **data)
        return ApiResponse(EndpointOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    class InputSerializer(_EndpointFields):
        name = serializers.CharField(max_length=100, required=False)
        model = serializers.CharField(max_length=300, required=False)

        class Meta:
            ref_name = "EndpointUpdateInput"

    @extend_schema(responses=EndpointOutputSerializer)
    def get(self, request, endpoint_id: int):
        return ApiResponse(EndpointOutputSerializer(selectors.endpoint_for_user(request.user, endpoint_id)).data)

    @extend_schema(request=InputSerializer, responses=EndpointOutputSerializer)
    def patch(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_for_user(request.user, endpoint_id)
        data = _input_without_api_keys(self.InputSerializer, request.data)
        endpoint = services.endpoint_update(endpoint=endpoint, **data)
        return ApiResponse(EndpointOutputSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request, endpoint_id: int):
        services.endpoint_delete(endpoint=selectors.endpoint_for_user(request.user, endpoint_id))
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


class JobStatusSerializer(JobStatusOutputSerializer):
    endpoints = serializers.ListField(child=serializers.CharField())
    strategy = serializers.CharField()
    n = serializers.IntegerField()
    seed = serializers.IntegerField()
    prompts = serializers.IntegerField()
    responses_per_second = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "GenerationJobStatus"


class GenerationJobListCreateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class InputSerializer(StrictInputSerializer):
        workspace = serializers.IntegerField()
        dataset = serializers.IntegerField(required=False, help_text="Target dataset (checked)")
        dataset_name = serializers.CharField(required=False, max_length=200, help_text="Create this dataset")
        endpoints = serializers.ListField(child=serializers.CharField(max_length=100), allow_empty=False,
                                          help_text="Endpoint names of the pool")
        n = serializers.IntegerField(required=False)
        strategy = serializers.ChoiceField(choices=services.STRATEGIES, default="sample")
        k = serializers.IntegerField(required=False)
        seed = serializers.IntegerField(default=0)
        temperatures = serializers.ListField(child=serializers.FloatField(), required=False)
        overrides = serializers.JSONField(required=False)
        prompts_file = serializers.FileField(required=False, help_text="JSONL, CSV or Parquet (multipart)")
        prompts = serializers.ListField(child=serializers.JSONField(), required=False,
                                        help_text="Inline prompts: strings, chats, or objects with the column")
        prompts_dataset = serializers.IntegerField(required=False, help_text="Take the prompts of this dataset")
        format = serializers.ChoiceField(choices=services.PROMPT_FORMATS, required=False)
        column = serializers.CharField(required=False, default="prompt")
        id_column = serializers.CharField(required=False, allow_blank=True)
        chunk_size = serializers.IntegerField(required=False)
        name = serializers.CharField(required=False, allow_blank=True, max_length=200)

        class Meta:
            ref_name = "GenerationJobCreateInput"

    @extend_schema(parameters=[OpenApiParameter("workspace", int)], responses=JobStatusSerializer(many=True))
    def get(self, request):
        jobs = selectors.generation_jobs_for_user(request.user, workspace_id=request.query_params.get("workspace"))[:200]
        return ApiResponse([selectors.generation_job_status(j, errors=0) for j in jobs])

    @extend_schema(request={"application/json": InputSerializer, "multipart/form-data": InputSerializer},
                   responses={201: JobStatusSerializer, 503: broker_down_response()},
                   description="Start a generation job: prompts from an uploaded file (prompts_file), inline "
                               "(prompts) or a dataset (prompts_dataset); the target is `dataset` or a new "
                               "`dataset_name`.")
    def post(self, request):
        data = request.data
        if hasattr(data, "getlist"):  # multipart: lists and objects come as repeated or JSON-encoded fields
            data = _form_to_json(data)
        data = _input_without_api_keys(self.InputSerializer, data)
        workspace = workspace_for_user(request.user, data.pop("workspace"), role=ADMIN)
        sources = [s for s in ("prompts_file", "prompts", "prompts_dataset") if data.get(s) not in (None, [])]
        if len(sources) != 1:
            raise DjangoValidationError({"prompts": "give exactly one of prompts_file, prompts, prompts_dataset"})
        source = sources[0]
        if source == "prompts_file":
            upload = data["prompts_file"]
            path = services.prompts_file_save(uploaded=upload, filename=upload.name)
            prompts_source = {"file": path, "format": data.get("format"), "column": data.get("column"),
                              "id_column": data.get("id_column") or None}
        elif source == "prompts":
            path = services.prompts_file_save(uploaded=_inline_jsonl(data["prompts"], data.get("column") or "prompt"),
                                              filename="inline.jsonl")
            prompts_source = {"file": path, "format": "jsonl", "column": data.get("column") or "prompt",
                              "id_column": data.get("id_column") or None}
        else:
            prompts_source = {"dataset": data["prompts_dataset"]}
        target = None
        if data.get("dataset") is not None:
            target = Dataset.objects.filter(pk=data["dataset"], workspace=workspace).first()
            if target is None:
                raise DjangoValidationError({"dataset": "no such dataset in this workspace"})
        job = services.generation_job_create(
            workspace=workspace, dataset=target, dataset_name=data.get("dataset_name"), endpoints=data["endpoints"],
            prompts_source=prompts_source, n=data.get("n"), strategy=data["strategy"], k=data.get("k"),
            seed=data["seed"], temperatures=data.get("temperatures"), overrides=data.get("overrides") or {},
            created_by=request.user, chunk_size=data.get("chunk_size"), name=data.get("name") or "")
        return ApiResponse(selectors.generation_job_status(job), status=status.HTTP_201_CREATED)


def _form_to_json(form) -> dict:
    out = {}
    for key in form.keys():
        values = form.getlist(key)
        if key in ("endpoints", "temperatures", "prompts"):
            if len(values) == 1 and isinstance(values[0], str) and values[0].strip().startswith("["):
                try:
                    out[key] = orjson.loads(values[0])
                    continue
                except orjson.JSONDecodeError:
                    raise DjangoValidationError({key: "a JSON list, or the field repeated"})
            out[key] = [v for v in values if v != ""]
        elif key == "overrides":
            try:
                out[key] = orjson.loads(values[0]) if values[0] else {}
            except orjson.JSONDecodeError:
                raise DjangoValidationError({key: "a JSON object of endpoint name to parameters"})
        else:
            out[key] = values[-1]
    return out


def _inline_jsonl(prompts: list, column: str) -> bytes:
    lines = []
    for i, p in enumerate(prompts):
        row = p if isinstance(p, dict) and not ("role" in p and "content" in p) else {column: p}
        if not isinstance(row, dict):
            raise DjangoValidationError({"prompts": f"item {i}: a string, a chat or an object"})
        lines.append(orjson.dumps(row))
    return b"\n".join(lines) + b"\n"


class GenerationJobDetailApi(APIView):
    @extend_schema(responses=JobStatusSerializer, description="Live status: counters, throughput, tokens, last errors.")
    def get(self, request, job_id: int):
        return ApiResponse(selectors.generation_job_status(job_for_user(request.user, job_id, kind=selectors.JOB_KIND)))


class GenerationJobCancelApi(APIView):
    @extend_schema(request=None, responses=JobStatusSerializer)
    def post(self, request, job_id: int):
        job = job_cancel(job=job_for_user(request.user, job_id, kind=selectors.JOB_KIND))
        return ApiResponse(selectors.generation_job_status(job))


class GenerationJobResumeApi(APIView):
    @extend_schema(request=None, responses=JobStatusSerializer,
                   description="Resume a cancelled or failed job, or retry the failed responses of a finished one.")
    def post(self, request, job_id: int):
        job = services.generation_job_resume(job=job_for_user(request.user, job_id, kind=selectors.JOB_KIND))
        return ApiResponse(selectors.generation_job_status(job))

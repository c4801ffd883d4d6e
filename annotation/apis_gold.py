"""REST API of gold records (workspace admins only): mark one record gold with its known answer or
unmark it, mark many from a gold file (all or nothing), list a dataset's gold records.

An annotator gets 403 on all of it (another workspace: 404), as annotation.access decides; the
record APIs an annotator can call never show is_gold or gold_answer (apis.RecordOutputSerializer).
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access
from .api_common import StrictInputSerializer, validated_input
from .apis import RecordCursorPagination
from .apis_io import _body_stream, _import_format
from .imports import ImportFormatError, UploadTooLarge
from .models import Record
from .quality.gold import records_gold_clear, records_gold_set
from .quality.gold_files import GoldLinesRejected, gold_file_import, gold_file_read, records_gold_of

_ANSWER_HELP = ('The known answer: question name to value, as a response\'s values, for one or more ranking, '
                'preference, rating or label questions, e.g. {"ranking": ["response-2", "response-1"]} '
                '(best first) or {"preference": {"preferred": "response-1", "strength": 2}}.')


class GoldRecordOutputSerializer(serializers.ModelSerializer):
    gold_answer = serializers.JSONField(allow_null=True)

    class Meta:
        model = Record
        ref_name = "GoldRecord"
        fields = ["id", "external_id", "is_gold", "gold_answer", "submitted_count"]


class RecordGoldApi(APIView):
    """PUT /records/{id}/gold/ marks the record gold (or changes its answer); DELETE unmarks it."""

    class InputSerializer(StrictInputSerializer):
        answer = serializers.JSONField(help_text=_ANSWER_HELP)

        class Meta:
            ref_name = "GoldAnswerInput"

    @extend_schema(request=InputSerializer, responses=GoldRecordOutputSerializer,
                   description="Mark the record as gold with its known answer, or change the answer (workspace "
                               "admin). Gold records are served to every annotator at the dataset's gold_rate and "
                               "never count toward min_submitted; responses already given are kept.")
    def put(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id, role=access.ADMIN)
        data = validated_input(self.InputSerializer, request.data)
        try:
            records_gold_set(dataset=record.dataset, answers={record.pk: data["answer"]})
        except ValidationError as exc:  # "gold_answer..." keys and "record N:" prefixes: this input's words
            raise ValidationError({key.replace("gold_answer", "answer", 1):
                                   [m.removeprefix(f"record {record.pk}: ") for m in messages]
                                   for key, messages in exc.message_dict.items()}) from None
        record.refresh_from_db(fields=["is_gold", "gold_answer", "submitted_count"])
        return ApiResponse(GoldRecordOutputSerializer(record).data)

    @extend_schema(responses={204: None},
                   description="Make a gold record ordinary again (workspace admin): its known answer is forgotten and "
                               "it is completed by the usual rule. Answers given to it are kept.")
    def delete(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id, role=access.ADMIN)
        records_gold_clear(dataset=record.dataset, record_ids=[record.pk])
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


_PaginatedGold = inline_serializer("PaginatedGoldRecordList", fields={
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": GoldRecordOutputSerializer(many=True),
})


class GoldItemSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, help_text="The record's external_id (or give `record`).")
    record = serializers.IntegerField(required=False, help_text="The record's id (or give `external_id`).")
    answer = serializers.JSONField(help_text=_ANSWER_HELP)

    class Meta:
        ref_name = "GoldItemInput"


class DatasetGoldApi(APIView):
    """GET lists the dataset's gold records; POST marks records gold from a gold file."""

    parser_classes: list = []  # the POST body is read as a stream (JSON array, JSON lines or CSV)
    renderer_classes = [JSONRenderer]

    @extend_schema(parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
                   responses=_PaginatedGold,
                   description="The dataset's gold records with their known answers (workspace admin), oldest "
                               "first, cursor-paginated like the records list.")
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        paginator = RecordCursorPagination()
        page = paginator.paginate_queryset(records_gold_of(dataset=dataset), request, view=self)
        return paginator.get_paginated_response(GoldRecordOutputSerializer(page, many=True).data)

    @extend_schema(
        request=GoldItemSerializer(many=True),
        responses={200: inline_serializer("GoldImportResult", fields={
                       "gold": serializers.IntegerField(help_text="Records marked gold (or given a new answer).")}),
                   413: OpenApiResponse(description="The body is over PREFLAB_MAX_UPLOAD_BYTES; nothing stored.")},
        description="Mark records gold with their known answers, all or nothing (workspace admin). Body: a JSON "
                    "array (application/json), JSON lines (application/x-ndjson) or CSV (text/csv: columns "
                    "external_id or record, and answer holding the answer as JSON) of {external_id | record, "
                    "answer}. Any bad line (unknown record, a record named twice, an answer that does not fit the "
                    "dataset's questions) and nothing is stored: 400 with `detail` saying so and `rejected` listing "
                    "every bad line as {line, field, reason}.")
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        fmt = _import_format(request)
        if fmt == "parquet":
            raise ValidationError({"Content-Type": "a gold file is JSON (an array), JSON lines or CSV"})
        try:
            n = gold_file_import(dataset=dataset, items=gold_file_read(stream=_body_stream(request), fmt=fmt))
        except GoldLinesRejected as exc:
            return ApiResponse(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
        except ImportFormatError as exc:
            return ApiResponse({"detail": f"nothing stored: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
        except UploadTooLarge as exc:
            return ApiResponse({"detail": f"nothing stored: {exc}"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return ApiResponse({"gold": n})

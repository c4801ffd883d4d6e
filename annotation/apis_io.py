"""REST API of imports and triplet export: bodies are read and answers written as streams.

The import views never touch `request.body` / `request.data`: they read the Django request (or,
for a chunked upload that has no Content-Length, the WSGI input) 64 KiB at a time, so a body of a
million records is imported with flat memory.

Who may do what: importing and exporting are workspace-admin operations. Exports are for admins
only because a triplet file carries every annotator's work on every record (and the agreement
between them), while an annotator's role is to see the records handed to them; an annotator who
needs the data asks an admin (or is made one). Another workspace's dataset answers 404, an
annotator 403 (annotation.access.dataset_for_user).
"""
from __future__ import annotations

import tempfile
from typing import BinaryIO

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access
from .exports import CONTENT_TYPES, RESOLVE, export_chunks, export_kind_file_name, export_kind_parse, export_rows
from .imports import (
    PAIR_FORMAT_NAMES,
    CountingStream,
    ImportFormatError,
    ImportReport,
    PairSource,
    UploadTooLarge,
    mapping_parse,
    pairs_import,
    pipeline_possible,
    records_import,
)
from .validation import bool_param

STREAM_CHUNK = 1 << 16


class ChunkedBodyUnreadable(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = ("this server cannot read a chunked upload (Django's development server, which `manage.py "
                      "quickstart` runs, does not decode chunks): send the body with a Content-Length, or upload "
                      "to a server that decodes chunks (granian, as in the image, or gunicorn)")
    default_code = "length_required"


def _body_stream(request) -> CountingStream:
    """The request body as a binary stream, never buffered whole.

    Django reads at most Content-Length bytes; a chunked upload has none, and Django would see an
    empty body, so then the server's decoded WSGI input is read (granian and gunicorn de-chunk it and
    say so with wsgi.input_terminated). A server that does not (wsgiref, under runserver) would hand
    over the raw chunks, or nothing: that upload is refused (411) rather than read as an empty file.
    """
    django_request = getattr(request, "_request", request)
    meta = django_request.META
    source = django_request
    if not meta.get("CONTENT_LENGTH") and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if "wsgi.input" not in meta or not meta.get("wsgi.input_terminated"):
            raise ChunkedBodyUnreadable()
        source = meta["wsgi.input"]
    return CountingStream(source, limit=settings.PREFLAB_MAX_UPLOAD_BYTES)


def _import_format(request) -> str:
    ctype = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if ctype in ("application/x-ndjson", "application/jsonl", "application/jsonlines", "application/ndjson",
                 "application/x-jsonlines"):
        return "ndjson"
    if ctype in ("", "application/json"):
        return "json"
    if ctype == "text/csv":
        return "csv"
    if ctype in ("application/vnd.apache.parquet", "application/x-parquet", "application/parquet"):
        return "parquet"
    raise ValidationError({"Content-Type": f"{ctype!r} is not supported; send application/json (an array), "
                                           "application/x-ndjson (one record per line), text/csv or "
                                           "application/vnd.apache.parquet"})


def _spooled(stream) -> BinaryIO:
    """Parquet keeps its index at the end of the file: copy the body to a temp file (on disk,
    64 KiB at a time) so the reader can seek."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, which closes it
    while chunk := stream.read(STREAM_CHUNK):
        tmp.write(chunk)
    tmp.seek(0)
    return tmp


def _run_import(run, *, stored: ImportReport) -> ApiResponse:
    """Run an import and answer: 200 with the report, 400 when unreadable, 413 when too large."""
    try:
        report = run()
    except ImportFormatError as exc:
        return ApiResponse({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    except UploadTooLarge as exc:
        return ApiResponse({"detail": f"{exc}; the {stored.created} records stored before the limit stay stored",
                            "stored": stored.created}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return ApiResponse(report.as_dict())


class _ImportBase(APIView):
    parser_classes: list = []  # the body is read as a stream by the view, never parsed by DRF

    def _progress(self, stored: ImportReport):
        def on_progress(n_stored, _n_rejected, _rejected):
            stored.created += n_stored
        return on_progress


class RecordImportApi(_ImportBase):
    """POST /datasets/{id}/records/ (dispatched here by apis.DatasetRecordsApi). Workspace admin.

    Body: a JSON array (application/json), NDJSON (application/x-ndjson; one record per line),
    CSV (text/csv) or Parquet (application/vnd.apache.parquet; spooled to a temp file, as Parquet
    needs to seek) of {external_id, fields, metadata, priority}; CSV/Parquet columns are field
    names plus `external_id`, `priority` and `metadata.<key>`. Answers 200 with
    {created, updated, rejected: [{line, reason}], rejected_count, total_lines} even when lines
    were rejected (valid ones are stored, batch by batch); 400 when the body cannot be read at
    all; 413 over PREFLAB_MAX_UPLOAD_BYTES; 411 for a chunked body the web server did not decode.
    """

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        fmt = _import_format(request)
        stream = _body_stream(request)
        stored = ImportReport()

        def run():
            if fmt != "parquet":
                return records_import(dataset=dataset, stream=stream, fmt=fmt, on_progress=self._progress(stored),
                                      pipeline=pipeline_possible())
            with _spooled(stream) as spooled:
                return records_import(dataset=dataset, stream=spooled, fmt=fmt, on_progress=self._progress(stored),
                                      pipeline=pipeline_possible())

        return _run_import(run, stored=stored)


class _AnyFormatNegotiation:
    """`?format=jsonl|csv|parquet` names the file format here, not a DRF renderer: errors stay JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class PairsImportApi(_ImportBase):
    """POST /datasets/{id}/import-pairs/: an existing preference set in any public format.

    Query: seed (shuffle seed, default 0), format (orca | ultrafeedback | clair | argilla |
    alpacafarm | trl | trl-implicit | pairwise; default: told from the columns), mapping (a JSON
    object {target: column}), strict=true (reject lines with columns the format does not read;
    by default they go to metadata). Body: JSON lines, a JSON array, CSV (text/csv) or Parquet
    (application/vnd.apache.parquet); application/json or no Content-Type is sniffed.
    Workspace admin. The dataset needs the fields prompt, response-1, response-2 (400 otherwise).
    Each pair's answers are shuffled into response-1/response-2 (stable for a given id and seed)
    and metadata.original_chosen records where the original chosen answer went. 400 "nothing
    stored" with the report when every line was rejected.
    """

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyFormatNegotiation

    @extend_schema(request=OpenApiTypes.OBJECT,
                   responses={200: OpenApiTypes.OBJECT,
                              400: OpenApiResponse(OpenApiTypes.OBJECT, description=(
                                  "a bad parameter (the field named with its reasons), or nothing stored: "
                                  "`detail` says so beside the import report (created, updated, rejected lines)"))},
                   parameters=[OpenApiParameter("seed", str, description="shuffle seed (default 0)"),
                               OpenApiParameter("format", str, enum=list(PAIR_FORMAT_NAMES)),
                               OpenApiParameter("mapping", str, description='JSON object {"prompt": "question", ...}'),
                               OpenApiParameter("strict", bool)])
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        params = request.query_params
        seed = params.get("seed", "0")
        if len(seed) > 100:
            raise ValidationError({"seed": "at most 100 characters"})
        fmt = params.get("format") or None
        if fmt is not None and fmt not in PAIR_FORMAT_NAMES:
            raise ValidationError({"format": f"must be one of {', '.join(PAIR_FORMAT_NAMES)}"})
        mapping = _mapping_param(params.get("mapping"))
        strict = bool_param("strict", params.get("strict"))
        try:
            filetype = _import_format(request)
        except ValidationError:
            filetype = None  # any other Content-Type: the content is sniffed, as it always was here
        stream = _body_stream(request)
        stored = ImportReport()

        def run():
            source = PairSource(stream, filetype=filetype if filetype in ("csv", "parquet") else None, fmt=fmt,
                                mapping=mapping, strict=strict)
            return pairs_import(dataset=dataset, source=source, seed=seed, on_progress=self._progress(stored),
                                pipeline=pipeline_possible())

        answer = _run_import(run, stored=stored)
        if answer.status_code == 200 and answer.data["created"] + answer.data["updated"] == 0:
            report = ImportReport(total_lines=answer.data["total_lines"], rejected_count=answer.data["rejected_count"])
            return ApiResponse({"detail": report.nothing_stored_message(), **answer.data},
                               status=status.HTTP_400_BAD_REQUEST)
        return answer


def _mapping_param(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError({"mapping": 'must be a JSON object {"target": "column", ...}'})
    if not isinstance(value, dict):
        raise ValidationError({"mapping": 'must be a JSON object {"target": "column", ...}'})
    return mapping_parse(value)


def _export_response(request, dataset_id: int, kind: str) -> StreamingHttpResponse:
    """The streamed file of one export kind; a bad parameter is a 400 naming it, before any byte."""
    dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
    params = export_kind_parse(kind, {k: v for k, v in request.query_params.items()})
    fmt = params.pop("format")
    rows = export_rows(kind, dataset=dataset, params=params)  # raises ValidationError before any byte
    response = StreamingHttpResponse(export_chunks(kind, rows, fmt=fmt, params=params), content_type=CONTENT_TYPES[fmt])
    filename = export_kind_file_name(kind, dataset, fmt=fmt, params=params, day=timezone.localdate())
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Accel-Buffering"] = "no"
    return response


_FILE_RESPONSES = {(200, "application/x-ndjson"): OpenApiTypes.BINARY, (200, "text/csv"): OpenApiTypes.BINARY,
                   (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY}
_PAIR_PARAMETERS = [
    OpenApiParameter("format", str, enum=["jsonl", "csv", "parquet"]),
    OpenApiParameter("question", str),
    OpenApiParameter("pairs", str, enum=["best_worst", "all", "best_vs_rest"]),
    OpenApiParameter("resolve", str, enum=list(RESOLVE)),
    OpenApiParameter("source", str, enum=["human", "suggestions", "both"]),
    OpenApiParameter("include_ties", bool),
    OpenApiParameter("style", str, enum=["standard", "conversational"]),
    OpenApiParameter("min_margin", float),
    OpenApiParameter("margin_from", str, enum=["votes", "strength"]),
    OpenApiParameter("include_both_bad", bool),
    OpenApiParameter("include_gold", bool, description="also gold records (left out by default)"),
    OpenApiParameter("include_excluded", bool,
                     description="also the answers of annotators excluded on the dataset (left out by default)"),
    OpenApiParameter("reviews", str, enum=["use", "ignore"],
                     description="use: a reviewed verdict replaces the record's votes (columns reviewed, reviewed_by)"),
]


class TripletsExportApi(APIView):
    """GET /datasets/{id}/triplets/: preference triplets, streamed. Workspace admins only.

    Query: format=jsonl|csv|parquet, question, pairs=best_worst|all|best_vs_rest,
    resolve=majority|mean_rank|weighted (votes weighed by annotator competence),
    source=human|suggestions|both, include_ties=false|true,
    style=standard|conversational, min_margin=<number>, margin_from=votes|strength (which margin
    min_margin reads), include_both_bad=false|true, trl_margin=vote_margin|rank_margin|strength_margin|
    judge_margin (adds TRL's `margin` column, a copy of that one), include_gold, include_excluded,
    reviews=use|ignore (a reviewed verdict replaces the votes; columns reviewed, reviewed_by). A bad
    parameter is a 400 naming it.
    JSONL and CSV are streamed row by row; Parquet row group by row group (its footer last).
    """

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyFormatNegotiation

    @extend_schema(responses=_FILE_RESPONSES, parameters=[
        *_PAIR_PARAMETERS,
        OpenApiParameter("trl_margin", str, enum=["vote_margin", "rank_margin", "strength_margin", "judge_margin"])])
    def get(self, request, dataset_id: int):
        return _export_response(request, dataset_id, "triplets")


class UnpairedExportApi(APIView):
    """GET /datasets/{id}/unpaired/: TRL's unpaired preference rows (prompt, completion, label) for KTO,
    streamed. Workspace admins only. The triplet export's options (trl_margin aside)."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyFormatNegotiation

    @extend_schema(responses=_FILE_RESPONSES, parameters=_PAIR_PARAMETERS)
    def get(self, request, dataset_id: int):
        return _export_response(request, dataset_id, "unpaired")


class ResponsesExportApi(APIView):
    """GET /datasets/{id}/responses-export/: every annotator response, one row each, streamed.
    Workspace admins only. Query: format=jsonl|csv|parquet, status=draft|submitted|discarded, include_gold,
    include_excluded (gold records and excluded annotators are left out by default). Each row carries its
    record's review (review_decision, reviewed_by, review_values, review_accepted)."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyFormatNegotiation

    @extend_schema(responses=_FILE_RESPONSES, parameters=[
        OpenApiParameter("format", str, enum=["jsonl", "csv", "parquet"]),
        OpenApiParameter("status", str, enum=["draft", "submitted", "discarded"]),
        OpenApiParameter("include_gold", bool, description="also responses to gold records (left out by default)"),
        OpenApiParameter("include_excluded", bool,
                         description="also the responses of annotators excluded on the dataset (left out by default)")])
    def get(self, request, dataset_id: int):
        return _export_response(request, dataset_id, "responses")

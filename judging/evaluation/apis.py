"""REST API of the evaluation side: agreement, leaderboards, best-of-n, simulated annotators.

Mounted at /api/v1/ (judging/evaluation/urls_api.py). Access as everywhere (annotation.access): workspace
admins only; another workspace's objects answer 404; every 400 names the field and the reason.
"""
from __future__ import annotations

from dataclasses import asdict

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import access
from annotation.agreement import DEFAULT_SCORING_RULE, SCORING_RULES
from annotation.apis import StrictInputSerializer
from annotation.exports import file_name_part, jsonl_chunks
from annotation.job_selectors import job_outcome_line
from annotation.jobs import job_run_inline, job_summary

from ..selectors import judge_by_ref
from .battles import alpaca_eval_arena, arena_csv, bootstrap_param, dataset_arena, seed_param
from .bestofn import best_of_n_params, best_of_n_rows
from .checks import dataset_checks
from .difficulty import difficulty_parse
from .leaderboards import (
    SOURCES,
    alpaca_eval_leaderboard,
    dataset_leaderboard,
    leaderboard_csv,
)
from .models import SimulatedAnnotator
from .selectors import dataset_agreement_with_judges as dataset_agreement
from .simulation import (
    pairs_annotate,
    samples_annotate,
    simulated_annotator_create,
    simulated_annotators_resolve,
    simulation_job_create,
)
from .uploads import UPLOAD_PARSERS, uploaded_input

# a 400 names the field and the reason, a 404 an object out of reach
_ERRORS = {400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT}
API_MAX_PAIRS = 5000  # annotate-pairs answers synchronously; the CLI takes more


class _FormatParamNegotiation:
    """`?format=json|csv|jsonl` names the output format here, not a DRF renderer; errors stay JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class _UploadNegotiation(_FormatParamNegotiation):
    """As _FormatParamNegotiation, but the parser follows the Content-Type: a multipart form, else JSON (plain or
    gzip) whatever the type says (see judging.evaluation.uploads)."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)


def _bool(params, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in ("true", "false", "1", "0"):
        raise serializers.ValidationError({name: ["must be true or false"]})
    return text in ("true", "1")


def _format(params, allowed: tuple[str, ...]) -> str:
    fmt = params.get("format") or allowed[0]
    if fmt not in allowed:
        raise serializers.ValidationError({"format": [f"must be one of {', '.join(allowed)}"]})
    return fmt


def _safe(name: str) -> str:
    return file_name_part(name)


def _scoring_rule(params) -> str:
    rule = params.get("scoring_rule") or DEFAULT_SCORING_RULE
    if rule not in SCORING_RULES:
        raise serializers.ValidationError({"scoring_rule": [f"must be one of {', '.join(SCORING_RULES)}"]})
    return rule


# --- agreement -------------------------------------------------------------------------------------

class DatasetAgreementApi(APIView):
    """GET /datasets/{id}/agreement/?scoring_rule=preflab|zero_one|absolute: agreement figures of a dataset (see
    annotation.agreement; default rule "preflab", AlpacaEval's rules by their names)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **_ERRORS}, parameters=[
        OpenApiParameter("scoring_rule", str, enum=list(SCORING_RULES), description=(
            "preflab (default): a tie against a preference scores 0, a tied majority 0.5; AlpacaEval's zero_one / "
            "absolute: a tied majority broken as AlpacaEval breaks it, and under absolute a tie against a "
            "preference scores 0.5"))])
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        return ApiResponse(dataset_agreement(dataset, scoring_rule=_scoring_rule(request.query_params)))


class DatasetChecksApi(APIView):
    """GET /datasets/{id}/checks/: checks before export — how often the longer response wins (humans, simulated
    annotators, each judge; Wilson 95% intervals) and position bias (humans, each judge). See
    judging.evaluation.checks."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        return ApiResponse(dataset_checks(dataset))


# --- leaderboards and arena ratings --------------------------------------------------------------------

def _board_response(board, fmt: str, filename: str):
    if fmt == "csv":
        response = HttpResponse(leaderboard_csv(board), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return response
    return ApiResponse(board.as_dict())


def _arena_response(arena: dict, fmt: str, filename: str):
    if fmt == "csv":
        response = HttpResponse(arena_csv(arena), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return response
    return ApiResponse(arena)


# JSON, or CSV with ?format=csv.
_BOARD_RESPONSES = {(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR, **_ERRORS}
_UPLOAD_RESPONSES = {**_BOARD_RESPONSES, 413: OpenApiTypes.OBJECT, 415: OpenApiTypes.OBJECT}
_LC_PARAMETERS = [
    OpenApiParameter("length_controlled", bool, description=(
        "add AlpacaEval's length-controlled win rate (alpaca_eval_length_controlled_noreg; _v1 with "
        "gamed_annotations), with a standard error bootstrapped over instructions")),
    OpenApiParameter("bootstrap", int, description="bootstrap resamples for the standard errors / intervals "
                                                   "(0-1000, default 200)"),
    OpenApiParameter("seed", int)]
_LC_OPTIONS = ("length_controlled", "instruction_difficulty", "gamed_annotations", "bootstrap", "seed")


def _lc_options(data, params) -> dict:
    """The length-control options of a request, from its body (data) or its query string (params)."""
    def get(name):
        value = data.get(name) if isinstance(data, dict) else None
        return params.get(name) if value is None else value

    difficulty = get("instruction_difficulty")
    if isinstance(difficulty, str):
        difficulty = difficulty_parse(difficulty)
    return {"length_controlled": _bool({"v": get("length_controlled")}, "v"),
            "instruction_difficulty": difficulty, "gamed": get("gamed_annotations"),
            "bootstrap": bootstrap_param(get("bootstrap")), "seed": seed_param(get("seed"))}


def _source(params) -> str:
    source = params.get("source") or "human"
    if source not in SOURCES:
        raise serializers.ValidationError({"source": [f"must be one of {', '.join(SOURCES)}"]})
    return source


class DatasetLeaderboardApi(APIView):
    """GET /datasets/{id}/leaderboard/?reference=&source=human|suggestions|both&format=json|csv&length_controlled=

    Win rate (and discrete win rate) of each model that wrote responses against the reference model (default: the
    most frequent model), with standard error, counts and average length (see judging.evaluation.leaderboards).
    POST takes the same query parameters and a body (JSON or a multipart form) with an `instruction_difficulty`
    file (keyed by record external_id, or a list with one value per compared record in id order; JSON or CSV)
    and/or `gamed_annotations`.
    """

    content_negotiation_class = _UploadNegotiation
    parser_classes = UPLOAD_PARSERS
    PARAMETERS = (OpenApiParameter("reference", str), OpenApiParameter("source", str, enum=list(SOURCES)),
                  OpenApiParameter("format", str, enum=["json", "csv"]), *_LC_PARAMETERS)

    @extend_schema(responses=_BOARD_RESPONSES, parameters=list(PARAMETERS))
    def get(self, request, dataset_id: int):
        return self._board(request, dataset_id, {})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=_UPLOAD_RESPONSES, parameters=list(PARAMETERS))
    def post(self, request, dataset_id: int):
        return self._board(request, dataset_id, None)

    def _board(self, request, dataset_id: int, data):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        params = request.query_params
        fmt = _format(params, ("json", "csv"))
        source = _source(params)
        if data is None:
            data = uploaded_input(request)
            if not isinstance(data, dict):
                reason = "must be an object with instruction_difficulty and/or gamed_annotations"
                raise serializers.ValidationError({"body": [reason]})
            unknown = sorted(set(data) - set(_LC_OPTIONS))
            if unknown:
                raise serializers.ValidationError({k: ["unknown field"] for k in unknown})
        board = dataset_leaderboard(dataset, reference=params.get("reference") or None, source=source,
                                    **_lc_options(data, params))
        return _board_response(board, fmt, f"{_safe(dataset.name)}-{dataset.pk}-leaderboard")


class DatasetArenaApi(APIView):
    """GET /datasets/{id}/arena/?source=human|suggestions|both&format=json|csv&bootstrap=&seed=&anchor=

    Chatbot Arena's Bradley–Terry ratings over every pair of models that wrote the dataset's responses, with
    bootstrap 95% intervals and the predicted win-probability matrix (see judging.evaluation.battles).
    """

    content_negotiation_class = _FormatParamNegotiation

    @extend_schema(responses=_BOARD_RESPONSES, parameters=[
        OpenApiParameter("source", str, enum=list(SOURCES)), OpenApiParameter("format", str, enum=["json", "csv"]),
        OpenApiParameter("bootstrap", int, description="resamples of the battles (0-1000, default 200)"),
        OpenApiParameter("seed", int), OpenApiParameter("anchor", str, description="model pinned at 1000")])
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        params = request.query_params
        fmt = _format(params, ("json", "csv"))
        arena = dataset_arena(dataset, source=_source(params), bootstrap=bootstrap_param(params.get("bootstrap")),
                              seed=seed_param(params.get("seed")), anchor=params.get("anchor") or None)
        return _arena_response(arena, fmt, f"{_safe(dataset.name)}-{dataset.pk}-arena")


def _workspace_admin(user) -> None:
    if not access.admin_workspaces(user).exists():
        raise exceptions.PermissionDenied("Only workspace admins may compute leaderboards.")


def _alpaca_upload(request, allowed: set[str]) -> tuple[object, dict]:
    """(annotations, the other fields) of an AlpacaEval upload: the JSON list itself, or an object / multipart form
    with `annotations` and the fields in `allowed`; query parameters fill what the body does not say."""
    data = uploaded_input(request)
    if not isinstance(data, dict):
        return data, {}
    unknown = sorted(set(data) - allowed - {"annotations"})
    if unknown:
        raise serializers.ValidationError({k: ["unknown field"] for k in unknown})
    return data.get("annotations"), data


class AlpacaEvalLeaderboardApi(APIView):
    """POST /leaderboards/alpaca-eval/: a leaderboard from AlpacaEval-format pairwise annotations.

    Body: the JSON list itself (with ?reference=MODEL), or {"annotations": [...], "reference": MODEL,
    "length_controlled": bool, "instruction_difficulty": {instruction: d} | [d, ...] | CSV text,
    "gamed_annotations": [...], "bootstrap": n, "seed": n}, or the same as a multipart form with files. JSON or
    JSON Lines, plain or gzip (Content-Encoding: gzip, or a .gz file); up to PREFLAB_EVAL_UPLOAD_MAX_BYTES.
    preference: 1 = output_1 better, 2 = output_2 better, 0 or 1.5 = tie, fractional values in [1, 2] allowed.
    Nothing is stored. Any workspace admin (or staff) may use it.
    """

    content_negotiation_class = _UploadNegotiation
    parser_classes = UPLOAD_PARSERS

    @extend_schema(request=OpenApiTypes.OBJECT, responses=_UPLOAD_RESPONSES, parameters=[
        OpenApiParameter("reference", str), OpenApiParameter("format", str, enum=["json", "csv"]), *_LC_PARAMETERS])
    def post(self, request):
        _workspace_admin(request.user)
        params = request.query_params
        fmt = _format(params, ("json", "csv"))
        annotations, data = _alpaca_upload(request, {"reference", *_LC_OPTIONS})
        reference = data.get("reference") or params.get("reference")
        if not isinstance(reference, str) or not reference.strip():
            raise serializers.ValidationError({"reference": ["required: the name of the reference model (a generator)"]})
        board = alpaca_eval_leaderboard(annotations, reference=reference.strip(), **_lc_options(data, params))
        return _board_response(board, fmt, "alpaca-eval-leaderboard")


class AlpacaEvalArenaApi(APIView):
    """POST /leaderboards/alpaca-eval/arena/: Chatbot Arena's Bradley–Terry ratings from AlpacaEval-format
    annotations, over every pair of generators in them. Body as for /leaderboards/alpaca-eval/ (the list, or
    {"annotations": [...], "bootstrap": n, "seed": n, "anchor": MODEL}; gzip accepted); nothing is stored."""

    content_negotiation_class = _UploadNegotiation
    parser_classes = UPLOAD_PARSERS

    @extend_schema(request=OpenApiTypes.OBJECT, responses=_UPLOAD_RESPONSES, parameters=[
        OpenApiParameter("format", str, enum=["json", "csv"]), OpenApiParameter("bootstrap", int),
        OpenApiParameter("seed", int), OpenApiParameter("anchor", str)])
    def post(self, request):
        _workspace_admin(request.user)
        params = request.query_params
        fmt = _format(params, ("json", "csv"))
        annotations, data = _alpaca_upload(request, {"bootstrap", "seed", "anchor"})
        merged = {**params.dict(), **data}
        arena = alpaca_eval_arena(annotations, bootstrap=bootstrap_param(merged.get("bootstrap")),
                                  seed=seed_param(merged.get("seed")), anchor=merged.get("anchor") or None)
        return _arena_response(arena, fmt, "alpaca-eval-arena")


# --- best-of-n --------------------------------------------------------------------------------------------

class BestOfNApi(APIView):
    """GET /datasets/{id}/best-of-n/?agent=&min_score=&include_ties=&min_n=: SFT rows (JSONL, streamed):
    for each record, the response the judge scored best (see judging.evaluation.bestofn)."""

    content_negotiation_class = _FormatParamNegotiation

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY}, parameters=[
        OpenApiParameter("agent", str), OpenApiParameter("min_score", float),
        OpenApiParameter("include_ties", bool), OpenApiParameter("min_n", int)])
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        options = best_of_n_params({k: v for k, v in request.query_params.items()})
        rows = best_of_n_rows(dataset=dataset, **options)
        first = next(rows, None)  # validation errors surface before the first byte

        def body():
            if first is not None:
                yield first
                yield from rows

        response = StreamingHttpResponse(jsonl_chunks(body()), content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{_safe(dataset.name)}-{dataset.pk}-best-of-n.jsonl"'
        response["X-Accel-Buffering"] = "no"
        return response


# --- simulated annotators ------------------------------------------------------------------------------

class SimulatedAnnotatorOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    judge = serializers.CharField(source="judge.name", read_only=True)
    judge_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = SimulatedAnnotator
        ref_name = "SimulatedAnnotator"
        fields = ["id", "name", "username", "judge", "judge_id", "flip_probability", "seed", "created_at"]


def _input(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class SimulatedAnnotatorListCreateApi(APIView):
    """GET/POST /workspaces/{id}/simulated-annotators/: list or create (user sim-<name>, flagged simulated)."""

    class InputSerializer(StrictInputSerializer):
        name = serializers.CharField(max_length=100)
        judge = serializers.CharField(help_text="Judge id or name in this workspace")
        flip_probability = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
        seed = serializers.IntegerField(default=0)

        class Meta:
            ref_name = "SimulatedAnnotatorInput"

    @extend_schema(responses=SimulatedAnnotatorOutputSerializer(many=True))
    def get(self, request, workspace_id: int):
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        qs = SimulatedAnnotator.objects.filter(workspace=workspace).select_related("user", "judge")
        return ApiResponse(SimulatedAnnotatorOutputSerializer(qs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: SimulatedAnnotatorOutputSerializer})
    def post(self, request, workspace_id: int):
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        data = _input(self.InputSerializer, request.data)
        ref = data["judge"]
        judge = judge_by_ref(workspace=workspace, ref=ref)
        if judge is None:
            raise serializers.ValidationError({"judge": [f"no judge {ref!r} in this workspace"]})
        sim = simulated_annotator_create(workspace=workspace, name=data["name"], judge=judge,
                                         flip_probability=data["flip_probability"], seed=data["seed"])
        return ApiResponse(SimulatedAnnotatorOutputSerializer(sim).data, status=status.HTTP_201_CREATED)


class _AnnotatorsField(serializers.ListField):
    child = serializers.JSONField()


class DatasetSimulateApi(APIView):
    """POST /datasets/{id}/simulate/ {annotators: [names or ids] (default all), max_records, wait}:
    a "simulation" job where the simulated annotators answer the dataset. With wait=true the job
    runs inside the request (small datasets, scripts) and the answer is the finished job."""

    class InputSerializer(StrictInputSerializer):
        annotators = _AnnotatorsField(required=False, default=list)
        max_records = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10_000_000,
                                               default=None)
        wait = serializers.BooleanField(default=False)

        class Meta:
            ref_name = "SimulateInput"

    @extend_schema(request=InputSerializer, responses={202: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        data = _input(self.InputSerializer, request.data)
        annotators = simulated_annotators_resolve(workspace=dataset.workspace, names=data["annotators"])
        job = simulation_job_create(dataset=dataset, annotators=annotators, max_records=data["max_records"],
                                    created_by=request.user, start=not data["wait"])
        if data["wait"]:
            # no Celery retry inside a request: a failure (e.g. the judge's endpoint is down) fails
            # the job with the reason, resumable; the caller gets the failed job, not a 500
            job = job_run_inline(job=job)
        body = {**asdict(job_summary(job)), "summary": job_outcome_line(job), "result": job.result}
        return ApiResponse(body, status=status.HTTP_200_OK if data["wait"] else status.HTTP_202_ACCEPTED)


class _PoolAnnotateApi(APIView):
    """What annotate-pairs and annotate-samples share: a workspace admin, valid input, at most
    API_MAX_PAIRS pairs (the answer waits for the LLM calls), the pool of simulated annotators."""

    InputSerializer: type[StrictInputSerializer]
    items = ""        # the input field the pairs come from
    too_many = ""     # the 400 when they are more than API_MAX_PAIRS pairs

    def pairs_requested(self, data: dict) -> int:
        raise NotImplementedError

    def pool_input(self, request, workspace_id: int) -> tuple:
        """(workspace, validated input, simulated annotators) of the request."""
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        data = _input(self.InputSerializer, request.data)
        if self.pairs_requested(data) > API_MAX_PAIRS:
            raise serializers.ValidationError({self.items: [self.too_many]})
        annotators = simulated_annotators_resolve(workspace=workspace, names=data["annotators"])
        return workspace, data, annotators


class AnnotatePairsApi(_PoolAnnotateApi):
    """POST /workspaces/{id}/annotate-pairs/ {pairs: [{instruction, output_1, output_2, generator_1?,
    generator_2?}], annotators?: [...]}: AlpacaFarm's annotate_pairs with the simulated pool. Returns
    the pairs with `preference` (1, 2, or 1.5 for a tie) and `annotator` — AlpacaEval's format."""

    class InputSerializer(StrictInputSerializer):
        pairs = serializers.JSONField()
        annotators = _AnnotatorsField(required=False, default=list)
        keep_dataset = serializers.BooleanField(default=False)

        class Meta:
            ref_name = "AnnotatePairsInput"

    items = "pairs"
    too_many = (f"at most {API_MAX_PAIRS} pairs per request (the answer waits for the LLM calls); "
                "use manage.py annotate_pairs for more")

    def pairs_requested(self, data: dict) -> int:
        return len(data["pairs"]) if isinstance(data["pairs"], list) else 0

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, workspace_id: int):
        workspace, data, annotators = self.pool_input(request, workspace_id)
        return ApiResponse(pairs_annotate(workspace=workspace, pairs=data["pairs"], annotators=annotators,
                                          created_by=request.user, keep_dataset=data["keep_dataset"]))


class AnnotateSamplesApi(_PoolAnnotateApi):
    """POST /workspaces/{id}/annotate-samples/ {samples: [{instruction, outputs: [...], generators?: [...]}],
    pairs_per_instruction?, seed?, annotators?}: random pairs of outputs per instruction, annotated."""

    class InputSerializer(StrictInputSerializer):
        samples = serializers.JSONField()
        annotators = _AnnotatorsField(required=False, default=list)
        pairs_per_instruction = serializers.IntegerField(default=1, min_value=1, max_value=100)
        seed = serializers.IntegerField(default=0)

        class Meta:
            ref_name = "AnnotateSamplesInput"

    items = "samples"
    too_many = f"at most {API_MAX_PAIRS} pairs per request; use manage.py annotate_pairs --samples for more"

    def pairs_requested(self, data: dict) -> int:
        samples = data["samples"]
        return len(samples) * data["pairs_per_instruction"] if isinstance(samples, list) else 0

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, workspace_id: int):
        workspace, data, annotators = self.pool_input(request, workspace_id)
        return ApiResponse(samples_annotate(workspace=workspace, samples=data["samples"], annotators=annotators,
                                            pairs_per_instruction=data["pairs_per_instruction"], seed=data["seed"],
                                            created_by=request.user))

"""Evaluation pages under /evaluation/: agreement, leaderboards (table + SVG chart),
best-of-n download, running simulated annotators, AlpacaEval-format upload. Thin: logic lives in
annotation.agreement and judging.evaluation (leaderboards, bestofn, simulation)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import APIException

from annotation import access, selectors
from annotation.agreement import DEFAULT_SCORING_RULE, SCORING_RULES
from annotation.errors import form_errors_from

from ..forms import SimulatedAnnotatorForm
from .battles import alpaca_eval_arena, arena_chart, arena_matrix_rows, dataset_arena
from .checks import dataset_length_bias
from .difficulty import difficulty_parse
from .leaderboards import (
    SOURCES,
    alpaca_eval_leaderboard,
    dataset_leaderboard,
    dataset_models,
    leaderboard_chart,
)
from .models import SimulatedAnnotator
from .selectors import dataset_agreement_with_judges as dataset_agreement
from .simulation import (
    simulated_annotator_create,
    simulated_annotator_delete,
    simulated_annotator_update,
    simulated_annotators_resolve,
    simulation_job_create,
)
from .uploads import parse_json, read_upload

MAX_UPLOAD = 256 * 1024 * 1024  # AlpacaEval 2's annotations of six models are ~24 MB
PAGE_BOOTSTRAP = 100  # resamples for the intervals drawn on the pages (the API and CLI default to 200)
REFUSED = "Only workspace admins see the evaluation pages."


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{k}: {'; '.join(v)}" for k, v in exc.message_dict.items()]
    return list(exc.messages)


@login_required
def evaluation_home(request):
    workspaces = access.admin_workspaces(request.user, refuse=REFUSED)
    datasets = selectors.datasets_for_user(request.user, role=access.ADMIN)
    datasets = datasets.exclude(name__startswith="scratch-annotate-pairs-")
    return render(request, "evaluation/home.html", {"datasets": datasets[:200], "workspaces": workspaces[:20]})


@login_required
def dataset_evaluation(request, dataset_id: int):
    dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
    rule = request.GET.get("scoring_rule") or DEFAULT_SCORING_RULE
    agreement = dataset_agreement(dataset, scoring_rule=rule if rule in SCORING_RULES else DEFAULT_SCORING_RULE)
    source = request.GET.get("source") or "human"
    reference = request.GET.get("reference") or None
    lc = request.GET.get("length_controlled") in ("1", "true", "on")
    board, board_errors, chart = None, [], None
    if source not in SOURCES:
        board_errors.append(f"source: must be one of {', '.join(SOURCES)}")
    else:
        try:
            board = dataset_leaderboard(dataset, reference=reference, source=source, length_controlled=lc,
                                        bootstrap=PAGE_BOOTSTRAP)
            chart = leaderboard_chart(board, lc=lc)
        except ValidationError as exc:
            board_errors = _errors(exc)
    return render(request, "evaluation/dataset.html", {
        "dataset": dataset, "agreement": agreement, "scoring_rules": SCORING_RULES,
        "board": board, "board_errors": board_errors, "chart": chart,
        "source": source, "sources": SOURCES, "reference": board.reference if board else (reference or ""),
        "models": dataset_models(dataset), "lc": lc, **_arena_context(dataset, request.GET.get("arena_source")),
        "length_bias": _length_bias(dataset),
        "simulated": SimulatedAnnotator.objects.filter(workspace=dataset.workspace).select_related("judge", "user"),
    })


def _length_bias(dataset) -> dict | None:
    try:
        return dataset_length_bias(dataset)
    except ValidationError:
        return None  # no ranking question: the agreement card already says so


def _arena_context(dataset, source: str | None) -> dict:
    source = source or "human"
    context = {"arena": None, "arena_errors": [], "arena_source": source, "arena_chart": None, "arena_matrix": []}
    try:
        arena = dataset_arena(dataset, source=source, bootstrap=PAGE_BOOTSTRAP)
    except ValidationError as exc:
        context["arena_errors"] = _errors(exc)
        return context
    return {**context, "arena": arena, "arena_chart": arena_chart(arena), "arena_matrix": arena_matrix_rows(arena)}


@login_required
@require_POST
def dataset_simulate(request, dataset_id: int):
    dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
    names = request.POST.getlist("annotators")
    max_records = request.POST.get("max_records") or None
    try:
        if max_records is not None:
            try:
                max_records = int(max_records)
            except ValueError:
                raise ValidationError({"max_records": "must be a positive integer"}) from None
        annotators = simulated_annotators_resolve(workspace=dataset.workspace, names=names)
        job = simulation_job_create(dataset=dataset, annotators=annotators, max_records=max_records,
                                    created_by=request.user)
    except ValidationError as exc:
        for error in _errors(exc):
            messages.error(request, error)
        return redirect("evaluation-dataset", dataset_id=dataset.pk)
    messages.success(request, f"Simulation job #{job.pk} started with {len(annotators)} simulated annotator(s).")
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def simulated_annotators_page(request, workspace_id: int):
    """A workspace's simulated annotators: create one, change its judge, noise or seed, remove it."""
    workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
    annotators = list(SimulatedAnnotator.objects.filter(workspace=workspace).select_related("judge", "user"))
    editing = None
    if request.POST.get("annotator"):
        editing = get_object_or_404(SimulatedAnnotator, pk=access.parse_pk(request.POST["annotator"]),
                                    workspace=workspace)
    form = SimulatedAnnotatorForm(request.POST or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            if editing is None:
                if not d.get("name"):
                    raise ValidationError({"name": "required"})
                done = simulated_annotator_create(workspace=workspace, name=d["name"], judge=d["judge"],
                                                  flip_probability=d["flip_probability"], seed=d["seed"])
                messages.success(request, f"Simulated annotator {done.name} created (user {done.user.username}).")
            else:
                done = simulated_annotator_update(annotator=editing, judge=d["judge"],
                                                  flip_probability=d["flip_probability"], seed=d["seed"])
                messages.success(request, f"{done.name} now uses judge {done.judge.name}, "
                                          f"p = {done.flip_probability:g}, seed {done.seed}.")
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return redirect("evaluation-simulated-annotators", workspace.pk)
    datasets = selectors.datasets_for_user(request.user, workspace_id=workspace.pk, role=access.ADMIN)
    return render(request, "evaluation/simulated_annotators.html", {
        "workspace": workspace, "annotators": annotators, "form": form, "editing": editing,
        "judges": form.fields["judge"].queryset, "datasets": datasets[:50]},
        status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def simulated_annotator_remove(request, workspace_id: int, annotator_id: int):
    workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
    annotator = get_object_or_404(SimulatedAnnotator, pk=annotator_id, workspace=workspace)
    simulated_annotator_delete(annotator=annotator)
    messages.success(request, f"Simulated annotator {annotator.name} removed; its answers stay.")
    return redirect("evaluation-simulated-annotators", workspace.pk)


def _uploaded_text(upload, name: str) -> str:
    """An uploaded file's text (gunzipped when it is .gz or gzip-compressed); a ValidationError otherwise."""
    if upload.size > MAX_UPLOAD:
        raise ValidationError({name: f"the file is over {MAX_UPLOAD // (1024 * 1024)} MB"})
    try:
        raw = read_upload(upload, gzipped=True if upload.name.endswith(".gz") else None, what="the file")
    except APIException as exc:
        raise ValidationError({name: str(exc.detail)}) from None
    return raw.decode("utf-8", errors="replace")


def _alpaca_page_items(request) -> object:
    upload = request.FILES.get("annotations")
    text = _uploaded_text(upload, "annotations") if upload is not None else request.POST.get("annotations_text") or ""
    if not text.strip():
        raise ValidationError({"annotations": "upload a JSON file or paste the JSON list"})
    try:
        return parse_json(text.encode())
    except APIException as exc:
        raise ValidationError({"annotations": str(exc.detail)}) from None


@login_required
@require_http_methods(["GET", "POST"])
def alpaca_eval_page(request):
    access.admin_workspaces(request.user, refuse=REFUSED)
    context = {"board": None, "errors": [], "chart": None, "reference": "", "lc": False, "arena": None}
    if request.method == "POST":
        reference = (request.POST.get("reference") or "").strip()
        lc = request.POST.get("length_controlled") in ("1", "true", "on")
        context.update(reference=reference, lc=lc)
        try:
            if not reference:
                raise ValidationError({"reference": "required: the reference model (a generator name)"})
            items = _alpaca_page_items(request)
            difficulty = request.FILES.get("instruction_difficulty")
            if difficulty is not None:
                difficulty = difficulty_parse(_uploaded_text(difficulty, "instruction_difficulty"))
            board = alpaca_eval_leaderboard(items, reference=reference, length_controlled=lc,
                                            instruction_difficulty=difficulty, bootstrap=PAGE_BOOTSTRAP)
            context.update(board=board, chart=leaderboard_chart(board, lc=lc))
            if request.POST.get("arena") in ("1", "true", "on"):
                arena = alpaca_eval_arena(items, bootstrap=PAGE_BOOTSTRAP)
                context.update(arena=arena, arena_chart=arena_chart(arena), arena_matrix=arena_matrix_rows(arena))
        except ValidationError as exc:
            context["errors"] = _errors(exc)[:50]
    return render(request, "evaluation/alpaca_eval.html", context, status=400 if context["errors"] else 200)

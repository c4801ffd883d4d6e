"""Evaluation pages (issue #6) under /evaluation/: agreement, leaderboards (table + SVG chart),
best-of-n download, running simulated annotators, AlpacaEval-format upload. Thin: logic lives in
annotation.agreement and judging.evaluation (leaderboards, bestofn, simulation)."""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation import access, selectors

from .leaderboards import SOURCES, alpaca_eval_leaderboard, dataset_leaderboard, dataset_models, leaderboard_chart
from .models import SimulatedAnnotator
from .selectors import dataset_agreement_with_judges as dataset_agreement
from .simulation import simulated_annotators_resolve, simulation_job_create

MAX_UPLOAD = 50 * 1024 * 1024
REFUSED = "Only workspace admins see the evaluation pages."


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{k}: {'; '.join(v)}" for k, v in exc.message_dict.items()]
    return list(exc.messages)


@login_required
def evaluation_home(request):
    access.admin_workspaces(request.user, refuse=REFUSED)
    datasets = selectors.datasets_for_user(request.user, role=access.ADMIN)
    datasets = datasets.exclude(name__startswith="scratch-annotate-pairs-")
    return render(request, "evaluation/home.html", {"datasets": datasets[:200]})


@login_required
def dataset_evaluation(request, dataset_id: int):
    dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
    agreement = dataset_agreement(dataset)
    source = request.GET.get("source") or "human"
    reference = request.GET.get("reference") or None
    lc = request.GET.get("length_controlled") in ("1", "true", "on")
    board, board_errors, chart = None, [], None
    if source not in SOURCES:
        board_errors.append(f"source: must be one of {', '.join(SOURCES)}")
    else:
        try:
            board = dataset_leaderboard(dataset, reference=reference, source=source, length_controlled=lc)
            chart = leaderboard_chart(board, lc=lc)
        except ValidationError as exc:
            board_errors = _errors(exc)
    return render(request, "evaluation/dataset.html", {
        "dataset": dataset, "agreement": agreement, "board": board, "board_errors": board_errors, "chart": chart,
        "source": source, "sources": SOURCES, "reference": board.reference if board else (reference or ""),
        "models": dataset_models(dataset), "lc": lc,
        "simulated": SimulatedAnnotator.objects.filter(workspace=dataset.workspace).select_related("judge", "user"),
    })


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
def alpaca_eval_page(request):
    access.admin_workspaces(request.user, refuse=REFUSED)
    context = {"board": None, "errors": [], "chart": None, "reference": "", "lc": False}
    if request.method == "POST":
        reference = (request.POST.get("reference") or "").strip()
        lc = request.POST.get("length_controlled") in ("1", "true", "on")
        context.update(reference=reference, lc=lc)
        upload = request.FILES.get("annotations")
        text = request.POST.get("annotations_text") or ""
        try:
            if not reference:
                raise ValidationError({"reference": "required: the reference model (a generator name)"})
            if upload is not None:
                if upload.size > MAX_UPLOAD:
                    raise ValidationError({"annotations": f"the file is over {MAX_UPLOAD // (1024 * 1024)} MB"})
                text = upload.read().decode("utf-8", errors="replace")
            if not text.strip():
                raise ValidationError({"annotations": "upload a JSON file or paste the JSON list"})
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationError({"annotations": f"not valid JSON: {exc.msg} at line {exc.lineno}"}) from None
            board = alpaca_eval_leaderboard(items, reference=reference, length_controlled=lc)
            context.update(board=board, chart=leaderboard_chart(board, lc=lc))
        except ValidationError as exc:
            context["errors"] = _errors(exc)[:50]
    return render(request, "evaluation/alpaca_eval.html", context, status=400 if context["errors"] else 200)

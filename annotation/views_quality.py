"""The quality page of a dataset (workspace admins): every annotator's quality figures with buttons to pause or
resume them and to exclude or include their responses in exports, and the anchoring comparison. Thin: the
figures come from annotation.quality.metrics, the standing from annotation.quality.standing."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from .access import ADMIN, dataset_for_user
from .quality.metrics import RULES, dataset_annotator, dataset_quality_report_cached, dataset_quality_summary
from .quality.standing import pause_reason_text, standing_set

# the page's buttons: action -> (standing_set keyword arguments, what the message says)
STANDING_ACTIONS = {
    "pause": ({"paused": True}, "paused: no more records are handed to them"),
    "resume": ({"paused": False}, "resumed"),
    "exclude": ({"excluded": True}, "excluded: exports leave their responses out"),
    "include": ({"excluded": False}, "included in exports again"),
}


@login_required
@require_GET
def dataset_quality_page(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    report = dataset_quality_report_cached(dataset=dataset)
    return render(request, "annotation/quality.html", {"dataset": dataset, "report": report, "rules": RULES,
                                                       "anchoring": report.anchoring})


@login_required
@require_GET
def dashboard_quality_summary(request, dataset_id: int):
    """The dashboard's quality card, loaded after the page (it reads the answers once more): who is flagged too
    fast, below the gold threshold, paused or excluded, and the anchoring headline."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    return render(request, "annotation/partials/quality_summary.html",
                  {"dataset": dataset, "quality_summary": dataset_quality_summary(dataset=dataset)})


@login_required
@require_POST
def annotator_standing_view(request, dataset_id: int, user_id: int):
    """One of the page's buttons (action = pause | resume | exclude | include). An htmx request gets the row's
    standing cell back; a plain form post goes back to the page with a message."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    user = dataset_annotator(dataset=dataset, user_id=user_id)
    action = request.POST.get("action", "")
    if action not in STANDING_ACTIONS:
        return HttpResponseBadRequest(f"action: must be one of {', '.join(STANDING_ACTIONS)}")
    changes, said = STANDING_ACTIONS[action]
    standing = standing_set(dataset=dataset, user=user, by=request.user, **changes)
    if request.htmx and not request.htmx.boosted:
        row = {"user_id": user.pk, "username": user.get_username(), "paused": standing.paused,
               "excluded": standing.excluded, "pause_reason": pause_reason_text(standing.reason)}
        return render(request, "annotation/quality.html#standing", {"dataset": dataset, "a": row, "said": said})
    messages.success(request, f"{user.get_username()} {said}.")
    return redirect("dataset-quality", dataset.pk)

"""Annotators' standing on a dataset: paused (no more records handed out; what they did is kept) and
excluded (their responses left out of exports; reversible, never a deletion), set by the gold policy
or by an admin. No AnnotatorStanding row means active and included."""
from __future__ import annotations

from django.db import transaction

from ..models import AnnotatorStanding, Dataset, Membership, Response
from .gold import GoldScore, gold_scores


def standing_of(*, dataset: Dataset, user) -> AnnotatorStanding | None:
    return AnnotatorStanding.objects.filter(dataset=dataset, user=user).first()


def annotator_paused(*, dataset: Dataset, user) -> str | None:
    """The reason the annotator is paused on this dataset, or None when they are not."""
    row = (AnnotatorStanding.objects.filter(dataset=dataset, user=user, paused=True)
           .values_list("reason", flat=True).first())
    if row is None:
        return None
    return pause_reason_text(row)


def pause_reason_text(reason: str | None) -> str:
    """What a paused annotator is told: the stored reason, or that an admin paused them."""
    return reason or "An admin of this dataset paused you."


@transaction.atomic
def standing_set(*, dataset: Dataset, user, paused: bool | None = None, excluded: bool | None = None,
                 reason: str = "", by=None) -> AnnotatorStanding:
    """Pause or resume, exclude or include an annotator on a dataset (None leaves that part as it
    is). `by` is the admin who did it (None: a policy)."""
    standing, _ = AnnotatorStanding.objects.select_for_update().get_or_create(dataset=dataset, user=user)
    if paused is not None:
        standing.paused = paused
        standing.reason = reason[:300] if paused else ""
    if excluded is not None:
        standing.excluded = excluded
    standing.changed_by = by
    standing.save()
    return standing


def gold_below_threshold(*, dataset: Dataset, score: GoldScore | None) -> bool:
    """The pause policy's condition: the policy is on (gold_pause_accuracy set) and the annotator has at least
    gold_pause_min_answers scored gold answers with an accuracy below the threshold."""
    threshold = dataset.gold_pause_accuracy
    return (threshold is not None and score is not None and score.answered >= dataset.gold_pause_min_answers
            and score.accuracy is not None and score.accuracy < threshold)


def gold_policy_apply(*, dataset: Dataset, user) -> str | None:
    """The pause policy, applied after the annotator submits an answer to a gold record: with the
    policy on (dataset.gold_pause_accuracy set), an annotator with at least gold_pause_min_answers
    scored gold answers whose accuracy is below the threshold is paused. Returns the reason when this
    call paused them. An admin's resume sticks until the accuracy is checked again after a new gold answer."""
    threshold = dataset.gold_pause_accuracy
    if threshold is None:
        return None
    score = gold_scores(dataset=dataset, user_ids=[user.pk]).get(user.pk)
    if not gold_below_threshold(dataset=dataset, score=score):
        return None
    if annotator_paused(dataset=dataset, user=user) is not None:
        return None
    records = "check record" if score.answered == 1 else "check records"
    reason = (f"Your answers matched the expected answer on {score.correct} of {score.answered} {records} "
              f"({score.accuracy:.0%}), below the {threshold:.0%} this dataset requires. An admin of this dataset "
              "can let you continue.")
    standing_set(dataset=dataset, user=user, paused=True, reason=reason)
    return reason


def excluded_user_ids(*, dataset: Dataset) -> set[int]:
    """The annotators whose responses exports leave out: those excluded on this dataset and, when
    dataset.exclude_removed_annotators is on, those with responses who are no longer members of the
    dataset's workspace."""
    ids = set(AnnotatorStanding.objects.filter(dataset=dataset, excluded=True).values_list("user_id", flat=True))
    if dataset.exclude_removed_annotators:
        members = Membership.objects.filter(workspace_id=dataset.workspace_id).values("user_id")
        ids |= set(Response.objects.filter(dataset=dataset).exclude(user_id__in=members)
                   .values_list("user_id", flat=True).distinct())
    return ids

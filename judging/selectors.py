"""Reads of the judging app: judges, judge jobs, the cleaning view of an imported preference set."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from annotation.access import ADMIN, admin_workspaces, object_for_user, parse_pk
from annotation.job_selectors import job_status, requeued_chunks
from annotation.models import Dataset, Job, JobError, Suggestion, Workspace
from annotation.selectors import dataset_pages, ranking_question

from .models import FlipDecision, Judge, JudgeOutput, JudgeVerdict

JOB_KIND = "judge"


def judge_list(*, workspace: Workspace) -> QuerySet[Judge]:
    return Judge.objects.filter(workspace=workspace).select_related("endpoint").order_by("name")


def judge_by_ref(*, workspace: Workspace, ref: str) -> Judge | None:
    """A judge of the workspace by id (when `ref` is digits and such a judge exists) or else by name."""
    judges = Judge.objects.filter(workspace=workspace)
    return (judges.filter(pk=int(ref)).first() if ref.isdigit() else None) or judges.filter(name=ref).first()


def judge_jobs(*, workspace: Workspace, dataset: Dataset | None = None) -> QuerySet[Job]:
    qs = Job.objects.filter(workspace=workspace, kind=JOB_KIND).select_related("dataset").order_by("-created_at")
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs


def judge_job_errors(*, job: Job, limit: int = 50) -> list[JobError]:
    return list(JobError.objects.filter(job=job).order_by("id")[:limit])


def judge_job_outputs(*, job: Job, record_id: int | None = None) -> QuerySet[JudgeOutput]:
    qs = JudgeOutput.objects.filter(job=job).order_by("record_id", "call_key")
    if record_id is not None:
        qs = qs.filter(record_id=record_id)
    return qs


def judge_job_verdicts(*, job: Job) -> QuerySet[JudgeVerdict]:
    return JudgeVerdict.objects.filter(job=job).select_related("record").order_by("record_id")


# --- cleaning an imported preference set --------------------------------------------------------

@dataclass
class Flip:
    """A record where a judge prefers the response that was originally rejected."""
    record_id: int
    external_id: str
    original_chosen: str
    judge_prefers: str
    margin: float | None
    agent: str
    rationale: str
    prompt: str
    chosen_text: str = ""     # the originally chosen answer
    preferred_text: str = ""  # the answer the judge prefers (originally rejected)
    decision: str = ""        # the admin's: accepted, rejected or "" (undecided)


def _flip_rows(dataset: Dataset, agent: str | None, min_margin: float | None, record_id: int | None = None):
    """(question fields, rows) of the ranking suggestions on imported pairs, most confident first.
    Only small columns are read; a record's fields are fetched for the flips alone."""
    from django.db.models.fields.json import KeyTextTransform

    question = ranking_question(dataset)
    if question is None:
        return [], iter(())
    qs = (Suggestion.objects.filter(question=question, record__dataset=dataset,
                                    record__metadata__has_key="original_chosen")
          .annotate(chosen=KeyTextTransform("original_chosen", "record__metadata"))
          .order_by("-score", "record_id")
          .values_list("record_id", "record__external_id", "chosen", "value", "score", "agent", "rationale"))
    if agent:
        qs = qs.filter(agent=agent)
    if record_id is not None:
        qs = qs.filter(record_id=record_id)
    if min_margin is not None:
        qs = qs.filter(score__gte=min_margin)
    return list(question.options.get("values", [])), qs.iterator(chunk_size=2000)


def _preferred_over(chosen: str, value, fields: list[str]) -> str | None:
    """The best-ranked field strictly above the originally chosen one, or None (agree or tie)."""
    if chosen not in fields or not isinstance(value, list):
        return None
    ranks = {i.get("value"): i.get("rank") for i in value if isinstance(i, dict)}
    if not isinstance(ranks.get(chosen), int):
        return None
    better = [f for f, r in ranks.items() if f != chosen and isinstance(r, int) and r < ranks[chosen]]
    return min(better, key=lambda f: ranks[f]) if better else None


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _with_prompts(dataset: Dataset, flips: list[Flip]) -> list[Flip]:
    """Fill in the flips' texts (prompt, both answers) and the admin's decisions, two queries per batch."""
    from annotation.models import Record

    ids = [f.record_id for f in flips]
    fields = dict(Record.objects.filter(pk__in=ids).values_list("pk", "fields"))
    decisions = dict(FlipDecision.objects.filter(record_id__in=ids).values_list("record_id", "decision"))
    for f in flips:
        texts = fields.get(f.record_id) or {}
        f.prompt = _text(texts.get(dataset.prompt_field))
        f.chosen_text = _text(texts.get(f.original_chosen))
        f.preferred_text = _text(texts.get(f.judge_prefers))
        f.decision = decisions.get(f.record_id, "")
    return flips


def cleaning_flips(dataset: Dataset, agent: str | None = None, *, min_margin: float | None = None) -> Iterator[Flip]:
    """Records imported with import_pairs where a judge ranks the originally rejected response above
    the originally chosen one (strictly: a tie is not a flip), most confident first. Streams."""
    fields, rows = _flip_rows(dataset, agent, min_margin)
    batch: list[Flip] = []
    for record_id, external_id, chosen, value, score, agent_, rationale in rows:
        better = _preferred_over(chosen, value, fields)
        if better is None:
            continue
        batch.append(Flip(record_id=record_id, external_id=external_id, original_chosen=chosen, judge_prefers=better,
                          margin=score, agent=agent_, rationale=rationale, prompt=""))
        if len(batch) >= 500:
            yield from _with_prompts(dataset, batch)
            batch = []
    if batch:
        yield from _with_prompts(dataset, batch)


def cleaning_flip(*, dataset: Dataset, record_id: int, agent: str) -> Flip | None:
    """One record's flip by one judge, with its texts and decision (the cleaning page's row)."""
    fields, rows = _flip_rows(dataset, agent, None, record_id=record_id)
    for rid, external_id, chosen, value, score, agent_, rationale in rows:
        better = _preferred_over(chosen, value, fields)
        if better is not None:
            return _with_prompts(dataset, [Flip(record_id=rid, external_id=external_id, original_chosen=chosen,
                                                judge_prefers=better, margin=score, agent=agent_,
                                                rationale=rationale, prompt="")])[0]
    return None


def cleaning_flips_count(*, dataset: Dataset, agent: str | None = None) -> int:
    fields, rows = _flip_rows(dataset, agent, None)
    return sum(1 for row in rows if _preferred_over(row[2], row[3], fields) is not None)


def cleaning_page(*, dataset: Dataset, agent: str | None = None, min_margin: float | None = None,
                  offset: int = 0, limit: int = 100) -> dict:
    """One pass: how many imported pairs were judged and flipped (per the filters), and one page of flips."""
    fields, rows = _flip_rows(dataset, agent, None)
    judged = flips = matching = 0
    agents: set[str] = set()
    page: list[Flip] = []
    for record_id, external_id, chosen, value, score, agent_, rationale in rows:
        judged += 1
        agents.add(agent_)
        better = _preferred_over(chosen, value, fields)
        if better is None:
            continue
        flips += 1
        if min_margin is not None and (score is None or score < min_margin):
            continue
        matching += 1
        if offset < matching <= offset + limit:
            page.append(Flip(record_id=record_id, external_id=external_id, original_chosen=chosen,
                             judge_prefers=better, margin=score, agent=agent_, rationale=rationale, prompt=""))
    return {"judged": judged, "flips": flips, "matching": matching, "agents": sorted(agents),
            "results": _with_prompts(dataset, page)}


UNDECIDED = ("keep", "drop")


def cleaned_pairs(*, dataset: Dataset, undecided: str = "keep", chunk_size: int = 2000) -> Iterator[dict]:
    """The imported pairs with the admin's decisions applied, in record order, streamed: an accepted
    flip swaps chosen and rejected, a rejected one keeps the original, and a flip not decided yet
    keeps the original (undecided="keep") or is left out ("drop"). Rows: prompt, chosen, rejected,
    record_id, external_id, chosen_field, rejected_field, flipped."""
    from annotation.models import Record

    if undecided not in UNDECIDED:
        raise ValidationError({"undecided": f"must be one of {', '.join(UNDECIDED)}"})
    fields = _pair_fields(dataset)
    flipped_undecided: set[int] = set()
    if undecided == "drop":
        decided = set(FlipDecision.objects.filter(record__dataset=dataset).values_list("record_id", flat=True))
        flipped_undecided = {f.record_id for f in _flip_ids(dataset)} - decided
    base = (Record.objects.filter(dataset=dataset, metadata__has_key="original_chosen")
            .values_list("pk", "external_id", "fields", "metadata"))
    for chunk in dataset_pages(base, dataset_id=dataset.pk, size=chunk_size):
        accepted = set(FlipDecision.objects.filter(record_id__in=[c[0] for c in chunk],
                                                   decision=FlipDecision.Decision.ACCEPTED)
                       .values_list("record_id", flat=True))
        for pk, external_id, texts, metadata in chunk:
            chosen = metadata.get("original_chosen")
            if chosen not in fields or pk in flipped_undecided:
                continue
            rejected = next(f for f in fields if f != chosen)
            flipped = pk in accepted
            if flipped:
                chosen, rejected = rejected, chosen
            yield {"prompt": _text(texts.get(dataset.prompt_field)), "chosen": _text(texts.get(chosen)),
                   "rejected": _text(texts.get(rejected)), "record_id": pk, "external_id": external_id,
                   "chosen_field": chosen, "rejected_field": rejected, "flipped": flipped}


def _pair_fields(dataset: Dataset) -> list[str]:
    question = ranking_question(dataset)
    values = list((question.options or {}).get("values", [])) if question is not None else []
    if len(values) != 2:
        raise ValidationError({"dataset": "the cleaned export needs a ranking question over two answers "
                                          "(a set imported with import_pairs)"})
    return values


def _flip_ids(dataset: Dataset) -> Iterator[Flip]:
    """Flips by any judge, without their texts."""
    fields, rows = _flip_rows(dataset, None, None)
    for record_id, _e, chosen, value, _s, _a, _r in rows:
        if _preferred_over(chosen, value, fields) is not None:
            yield Flip(record_id=record_id, external_id="", original_chosen=chosen, judge_prefers="", margin=None,
                       agent="", rationale="", prompt="")


# --- access (workspace admins only; another workspace's object is a 404) ------------------------

def judges_for_user(user, *, workspace_id=None) -> QuerySet[Judge]:
    qs = Judge.objects.filter(workspace__in=admin_workspaces(user)).select_related("endpoint").order_by("name")
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    return qs


def judge_for_user(user, pk) -> Judge:
    """A judge of a workspace the user administers: else Http404 / PermissionDenied (annotation.access)."""
    return object_for_user(user, Judge.objects.select_related("endpoint", "workspace"), pk, role=ADMIN, what="judge")


def judge_jobs_for_user(user, *, workspace_id=None, dataset_id=None) -> QuerySet[Job]:
    qs = (Job.objects.filter(kind=JOB_KIND, workspace__in=admin_workspaces(user))
          .select_related("dataset").prefetch_related(requeued_chunks()).order_by("-created_at"))
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    if dataset_id not in (None, ""):
        qs = qs.filter(dataset_id=parse_pk(dataset_id))
    return qs


def judge_job_status(job: Job, *, errors: int = 10) -> dict:
    """What the API and the progress page show about a judge job: the status every job has
    (annotation.job_selectors), the judge, records per second, and its first errors."""
    status = job_status(job)
    rate = status.pop("rate")
    params = job.params or {}
    return {
        **status, "judge": params.get("judge_id"), "judge_name": params.get("judge"), "method": params.get("method"),
        "agent": params.get("agent"), "aspect": params.get("aspect"),
        "target_dataset": params.get("target_dataset_id"), "records_per_second": rate,
        "last_errors": [{"item": e.item, "error": e.error} for e in judge_job_errors(job=job, limit=errors)]
        if errors else [],
    }


def judge_job_panel(job: Job) -> dict:
    """What the judge panel of the one job page shows (JudgeJobHandler.detail_context)."""
    return {"status": judge_job_status(job, errors=20), "bias": (job.result or {}).get("position_bias"),
            "latest": list(judge_job_verdicts(job=job).order_by("-id")[:10])}

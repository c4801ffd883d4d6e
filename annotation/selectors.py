"""Reads of the annotation app (HackSoft style): who may see what, lists with filters, progress.

Access rules, shared by the REST API and the browser UI:
- an object of a workspace the user is not a member of does not exist for them (Http404, never 403,
  so its existence is not leaked);
- a member whose role is too low for the operation gets PermissionDenied (403);
- staff users act as admins of every workspace.
Both exceptions are Django's, so plain Django views and DRF views answer 404 / 403 alike.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from .models import Dataset, Job, Membership, Question, Record, Response, Workspace
from .validation import bool_param

ADMIN = Membership.Role.ADMIN


# --- access ------------------------------------------------------------------------------------

def membership_role(user, workspace: Workspace | int) -> str | None:
    """The user's role in a workspace ("admin" | "annotator"), "admin" for staff, else None."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_staff:
        return ADMIN
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return (Membership.objects.filter(user=user, workspace_id=workspace_id)
            .values_list("role", flat=True).first())


def _check_role(role: str | None, *, admin: bool, what: str) -> None:
    if role is None:
        raise Http404(f"No such {what}.")
    if admin and role != ADMIN:
        raise PermissionDenied("Only an admin of this workspace may do this.")


def _with_role(qs: QuerySet, user, workspace_ref: str) -> QuerySet:
    """Annotate the caller's role in the object's workspace (one query for object and access)."""
    if user is None or not user.is_authenticated or user.is_staff:
        return qs
    return qs.annotate(caller_role=Subquery(
        Membership.objects.filter(user=user, workspace_id=OuterRef(workspace_ref)).values("role")[:1]))


def _role_of(obj, user) -> str | None:
    if user is None or not user.is_authenticated:
        return None
    return ADMIN if user.is_staff else getattr(obj, "caller_role", None)


def _remember_role(dataset: Dataset, user, role: str | None) -> None:
    dataset._caller_role = (user.pk, role)


def dataset_role(dataset: Dataset, user) -> str | None:
    """The user's role in the dataset's workspace, without a query when dataset_for_user fetched it."""
    cached = getattr(dataset, "_caller_role", None)
    if cached is not None and cached[0] == getattr(user, "pk", None):
        return cached[1]
    return membership_role(user, dataset.workspace_id)


def workspaces_for_user(user) -> QuerySet[Workspace]:
    """Workspaces the user is a member of (all of them for staff)."""
    if user is None or not user.is_authenticated:
        return Workspace.objects.none()
    if user.is_staff:
        return Workspace.objects.all()
    return Workspace.objects.filter(memberships__user=user).distinct()


def workspace_for_user(user, pk: Any, *, admin: bool = False) -> Workspace:
    """The workspace if the user is a member (an admin when `admin`): else Http404 / PermissionDenied."""
    ws = _with_role(Workspace.objects.filter(pk=_int_pk(pk)), user, "pk").first()
    _check_role(_role_of(ws, user) if ws else None, admin=admin, what="workspace")
    return ws


def job_for_user(user, pk: Any, *, admin: bool = True) -> Job:
    """A job if the user is an admin of its workspace (jobs are admin work: imports, exports,
    generation, judging): else Http404 (not a member) / PermissionDenied (an annotator)."""
    job = _with_role(Job.objects.select_related("dataset", "workspace").filter(pk=_int_pk(pk)),
                     user, "workspace_id").first()
    _check_role(_role_of(job, user) if job else None, admin=admin, what="job")
    return job


def dataset_for_user(user, pk: Any, *, admin: bool = False) -> Dataset:
    """The dataset if the user is a member of its workspace (an admin when `admin`):
    else Http404 (not a member, or no such dataset) / PermissionDenied (role too low)."""
    dataset = _with_role(Dataset.objects.select_related("workspace").filter(pk=_int_pk(pk)),
                         user, "workspace_id").first()
    role = _role_of(dataset, user) if dataset else None
    _check_role(role, admin=admin, what="dataset")
    _remember_role(dataset, user, role)
    return dataset


def record_for_user(user, pk: Any, *, admin: bool = False) -> Record:
    """The record if the user is a member of its dataset's workspace (an admin when `admin`):
    else Http404 / PermissionDenied. record.dataset and record.dataset.workspace come with it."""
    record = _with_role(Record.objects.select_related("dataset", "dataset__workspace").filter(pk=_int_pk(pk)),
                        user, "dataset__workspace_id").first()
    role = _role_of(record, user) if record else None
    _check_role(role, admin=admin, what="record")
    _remember_role(record.dataset, user, role)
    return record


def _int_pk(pk: Any) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        return -1


# --- lists -------------------------------------------------------------------------------------

def datasets_for_user(user, *, workspace_id: Any = None) -> QuerySet[Dataset]:
    qs = Dataset.objects.select_related("workspace").filter(workspace__in=workspaces_for_user(user))
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=_int_pk(workspace_id))
    return qs.order_by("-created_at", "-id")


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__username")


RECORD_STATUS = ("pending", "completed")
RESPONSE_STATUS = ("submitted", "discarded", "draft", "missing")


def records_for(*, dataset: Dataset, user, filters: Mapping[str, Any] | None = None) -> QuerySet[Record]:
    """Records of a dataset with the list filters of the API and UI.

    filters: status=pending|completed, response_status=submitted|discarded|draft|missing (the
    user's own response), has_my_response=true|false, metadata.<key>=<value> (JSON key equality;
    the value is compared as a string, a number or a boolean, whichever matches).
    Bad filter values raise ValidationError naming the filter.
    """
    filters = filters or {}
    # A lower bound on id keeps the planner's id-ordered scan (cursor pagination) from walking the
    # records of every older dataset first: PostgreSQL assumes a dataset's rows are spread evenly
    # over the id range. ORDER BY dataset_id, id reads it from record_dataset_id_idx at once.
    first_id = (Record.objects.filter(dataset=dataset).order_by("dataset_id", "id")
                .values_list("id", flat=True).first())
    qs = Record.objects.filter(dataset=dataset)
    if first_id is not None:
        qs = qs.filter(id__gte=first_id)
    mine = Response.objects.filter(record=OuterRef("pk"), user=user)
    status = filters.get("status")
    if status not in (None, ""):
        if status not in RECORD_STATUS:
            raise ValidationError({"status": f"must be one of {', '.join(RECORD_STATUS)}"})
        qs = qs.filter(completed=(status == "completed"))
    response_status = filters.get("response_status")
    if response_status not in (None, ""):
        if response_status not in RESPONSE_STATUS:
            raise ValidationError({"response_status": f"must be one of {', '.join(RESPONSE_STATUS)}"})
        if response_status == "missing":
            qs = qs.exclude(Exists(mine))
        else:
            qs = qs.filter(Exists(mine.filter(status=response_status)))
    has_mine = filters.get("has_my_response")
    if has_mine not in (None, ""):
        qs = qs.filter(Exists(mine)) if bool_param("has_my_response", has_mine) else qs.exclude(Exists(mine))
    for key, value in filters.items():
        if not key.startswith("metadata."):
            continue
        path = key[len("metadata."):]
        if not path or not all(part.replace("_", "").replace("-", "").isalnum() for part in path.split(".")):
            raise ValidationError({key: "metadata keys are letters, digits, '-' and '_' (nested with '.')"})
        qs = qs.filter(_metadata_equals(path.replace(".", "__"), value))
    return qs


def _metadata_equals(lookup: str, raw: Any) -> Q:
    """metadata__<key> equal to the raw query value taken as a string, or as the JSON scalar it spells."""
    raw = str(raw)
    q = Q(**{f"metadata__{lookup}": raw})
    lowered = raw.lower()
    if lowered in ("true", "false"):
        q |= Q(**{f"metadata__{lookup}": lowered == "true"})
    else:
        try:
            number = float(raw)
        except ValueError:
            number = None
        if number is not None and number == number and abs(number) != float("inf"):
            q |= Q(**{f"metadata__{lookup}": int(number) if number.is_integer() else number})
    return q


def responses_for(*, record: Record, user) -> QuerySet[Response]:
    """All responses of a record for a workspace admin, the user's own otherwise."""
    qs = Response.objects.filter(record=record).select_related("user").order_by("id")
    if dataset_role(record.dataset, user) != ADMIN:
        qs = qs.filter(user=user)
    return qs


def suggestions_visible(*, dataset: Dataset, user) -> bool:
    return dataset.show_suggestions or dataset_role(dataset, user) == ADMIN


def ranking_question(dataset: Dataset) -> Question | None:
    return dataset.questions.filter(kind=Question.Kind.RANKING).order_by("position", "id").first()


def ranked_fields(dataset: Dataset) -> list[str]:
    """The field names the dataset's ranking question ranks (or the compared pair of a rating)."""
    return ranked_fields_of(dataset.questions.all())


def ranked_question_of(questions: Iterable[Question]) -> Question | None:
    """The question that orders a dataset's responses, from its questions in their order
    (position, id): the first ranking question, else the first comparison rating (options.compares)."""
    questions = list(questions)
    return (next((q for q in questions if q.kind == Question.Kind.RANKING), None)
            or next((q for q in questions if q.kind == Question.Kind.RATING and (q.options or {}).get("compares")),
                    None))


def ranked_fields_of(questions: Iterable[Question]) -> list[str]:
    """ranked_fields from a dataset's questions already at hand: the fields ranked_question_of ranks
    (a comparison rating: the pair it compares)."""
    question = ranked_question_of(questions)
    if question is None:
        return []
    options = question.options or {}
    return list(options["compares"] if question.kind == Question.Kind.RATING else options.get("values", []))


# --- progress ----------------------------------------------------------------------------------

def dataset_progress(dataset: Dataset) -> dict[str, int]:
    """Records, completed records and submitted responses of a dataset."""
    counts = Record.objects.filter(dataset=dataset).aggregate(
        records=Count("id"), completed=Count("id", filter=Q(completed=True)))
    submitted = Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED).count()
    return {"records": counts["records"], "completed": counts["completed"], "submitted_responses": submitted}


def datasets_progress(dataset_ids: list[int]) -> dict[int, dict[str, int]]:
    """dataset_progress for many datasets in two queries (list pages)."""
    out = {pk: {"records": 0, "completed": 0, "submitted_responses": 0} for pk in dataset_ids}
    for row in (Record.objects.filter(dataset_id__in=dataset_ids).values("dataset_id")
                .annotate(records=Count("id"), completed=Count("id", filter=Q(completed=True)))):
        out[row["dataset_id"]].update(records=row["records"], completed=row["completed"])
    for row in (Response.objects.filter(dataset_id__in=dataset_ids, status=Response.Status.SUBMITTED)
                .values("dataset_id").annotate(n=Count("id"))):
        out[row["dataset_id"]]["submitted_responses"] = row["n"]
    return out

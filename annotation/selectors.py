"""Reads of the annotation app (HackSoft style): lists with filters, progress, a dataset's definition.

Who may see what is annotation.access (dataset_for_user, record_for_user, ...); the lists here
start from what it allows.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, Min, Model, OuterRef, Q, QuerySet
from django.utils import timezone

from .access import (
    ADMIN,
    ANNOTATOR,
    dataset_role,
    parse_pk,
    role_at_least,
    workspaces_for_user,
)
from .models import Dataset, Invitation, Membership, Question, Record, Response, Suggestion, Workspace
from .quality.serving import suggestion_assigned
from .validation import bool_param

# --- a dataset's rows in id order ----------------------------------------------------------------

def after_sql(table: str) -> str:
    """The rows of a dataset (records, responses) after an id, as keyset pagination on the table's
    (dataset, id) index; parameters: after_params(dataset id, last id). Each part has its reason: the row comparison
    (dataset_id, id) > (ds, last) is one only that index serves, so the planner takes it (with
    `dataset_id = ds AND id > last` alone it may walk the primary key and step over other datasets'
    records); `id > last` beside `dataset_id = ds` is where PostgreSQL starts the index scan (from the
    equality and the row comparison alone it starts at the dataset's first entry and steps over every
    record already read: 0.25 s a chunk 900,000 records in, quadratic in the dataset's size). The planner
    may still take the primary key when the dataset is most of the table and not the newest (the row
    comparison's estimate counts the records of the datasets after it): from a `last` inside the dataset it
    steps over only other datasets' records interleaved with its own, so `last` is never below the
    dataset's first row (dataset_first_id)."""
    return (f'{table}."dataset_id" = %s AND ({table}."dataset_id", {table}."id") > (%s, %s) '
            f'AND {table}."id" > %s')


def after_params(dataset_id: int, after_id: int) -> list[int]:
    return [dataset_id, dataset_id, after_id, after_id]


def dataset_first_id(model: type[Model], dataset_id: int) -> int | None:
    """The id of the dataset's first row in `model`'s table (None: it has none): one probe of the table's
    (dataset, id) index."""
    return model.objects.filter(dataset_id=dataset_id).aggregate(first=Min("id"))["first"]


def dataset_pages(queryset: QuerySet, *, dataset_id: int, size: int) -> Iterator[list]:
    """The rows of `queryset` (one dataset's records or responses, as values_list tuples with the id first) in
    pages of up to `size`, in id order: from the dataset's first row, each page from where the last one ended
    (after_sql). From id 0 the first page could walk the primary key over every older dataset's rows."""
    first = dataset_first_id(queryset.model, dataset_id)
    if first is None:
        return
    after = after_sql(f'"{queryset.model._meta.db_table}"')
    last = first - 1
    while True:
        page = list(queryset.extra(where=[after], params=after_params(dataset_id, last)).order_by("id")[:size])
        if page:
            yield page
        if len(page) < size:
            return
        last = page[-1][0]


# --- lists -------------------------------------------------------------------------------------

def datasets_for_user(user, *, workspace_id: Any = None, role: str = ANNOTATOR) -> QuerySet[Dataset]:
    """Datasets of the workspaces where the user's role is at least `role` (annotation.access)."""
    qs = Dataset.objects.select_related("workspace").filter(workspace__in=workspaces_for_user(user, role=role))
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    return qs.order_by("-created_at", "-id")


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__username")


def invitations_for(user) -> QuerySet[Invitation]:
    """The invitations addressed to the user's account (by its user name, or its e-mail address)."""
    match = Q(invitee=user.get_username())
    if user.email:
        match |= Q(invitee__iexact=user.email)
    return Invitation.objects.filter(match).select_related("workspace", "invited_by").order_by("-created_at", "-id")


def invitations_of(workspace: Workspace) -> QuerySet[Invitation]:
    """A workspace's pending invitations (its members page lists them)."""
    return Invitation.objects.filter(workspace=workspace).select_related("invited_by").order_by("-created_at", "-id")


RECORD_STATUS = ("pending", "completed")
RESPONSE_STATUS = ("submitted", "discarded", "draft", "missing")


def records_for(*, dataset: Dataset, user, filters: Mapping[str, Any] | None = None) -> QuerySet[Record]:
    """Records of a dataset with the list filters of the API and UI.

    filters: status=pending|completed, response_status=submitted|discarded|draft|missing (the
    user's own response), has_my_response=true|false, gold=true|false (admins only), metadata.<key>=<value> (JSON key equality;
    the value is compared as a string, a number or a boolean, whichever matches; only on the keys
    the user may see, metadata_keys_visible, so a filter cannot probe a hidden key's value).
    Bad filter values raise ValidationError naming the filter.
    """
    filters = filters or {}
    # A lower bound on id keeps the planner's id-ordered scan (cursor pagination) from walking the
    # records of every older dataset first: PostgreSQL assumes a dataset's rows are spread evenly
    # over the id range. The bound is one probe of record_dataset_id_idx (dataset_first_id).
    first_id = dataset_first_id(Record, dataset.pk)
    qs = Record.objects.filter(dataset=dataset)
    if first_id is not None:
        qs = qs.filter(id__gte=first_id)
    mine = Response.objects.filter(record=OuterRef("pk"), user=user)
    admin = gold_visible(dataset=dataset, user=user)
    status = filters.get("status")
    if status not in (None, ""):
        if status not in RECORD_STATUS:
            raise ValidationError({"status": f"must be one of {', '.join(RECORD_STATUS)}"})
        if admin:
            qs = qs.filter(completed=(status == "completed"))
        else:  # gold reads as ordinary records to annotators (record_counts_shown)
            done = _completed_shown_q(dataset=dataset, user=user, mine_submitted=mine.filter(status=Response.Status.SUBMITTED))
            qs = qs.filter(done) if status == "completed" else qs.exclude(done)
    gold = filters.get("gold")
    if gold not in (None, ""):
        if not admin:
            raise ValidationError({"gold": "only the workspace's admins may filter on gold"})
        qs = qs.filter(is_gold=bool_param("gold", gold))
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
    visible = None
    for key, value in filters.items():
        if not key.startswith("metadata."):
            continue
        path = key[len("metadata."):]
        if not path or not all(part.replace("_", "").replace("-", "").isalnum() for part in path.split(".")):
            raise ValidationError({key: "metadata keys are letters, digits, '-' and '_' (nested with '.')"})
        if visible is None:
            visible = (metadata_keys_visible(dataset=dataset, user=user),)
        if visible[0] is not None and path.split(".")[0] not in visible[0]:
            raise ValidationError({key: "only the metadata keys this dataset shows to annotators can be filtered on"})
        qs = qs.filter(_metadata_equals(path.replace(".", "__"), value))
    return qs


def metadata_keys_visible(*, dataset: Dataset, user) -> frozenset[str] | None:
    """The record metadata keys `user` may read in `dataset`: None (all of them) for an admin of its
    workspace (and staff), else the keys the dataset declares visible (Dataset.visible_metadata).
    Provenance (generation, source), original labels (original_chosen), judge info and gold
    answers are admin-only unless an admin declares them visible."""
    if role_at_least(dataset_role(dataset, user), ADMIN):
        return None
    return frozenset(dataset.visible_metadata or ())


def gold_visible(*, dataset: Dataset, user) -> bool:
    """Whether `user` may know which records of `dataset` are gold and their known answers, and the
    dataset's quality settings: admins of its workspace (and staff) only. Annotators and reviewers
    must not tell gold from ordinary records."""
    return role_at_least(dataset_role(dataset, user), ADMIN)


def metadata_only(metadata: Any, keys: frozenset[str] | None) -> dict:
    """The part of a record's metadata that `keys` (from metadata_keys_visible) lets through."""
    if not isinstance(metadata, dict):
        return {}
    if keys is None:
        return metadata
    return {k: v for k, v in metadata.items() if k in keys}


def record_metadata_for(*, record: Record, dataset: Dataset, user) -> dict:
    """A record's metadata as `user` may see it: the one path every record read of the API and the
    pages goes through (next, the records list and detail, the annotate and history pages)."""
    return metadata_only(record.metadata, metadata_keys_visible(dataset=dataset, user=user))


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
    if not role_at_least(dataset_role(record.dataset, user), ADMIN):
        qs = qs.filter(user=user)
    return qs


def suggestions_visible(*, dataset: Dataset, user) -> bool:
    return dataset.show_suggestions or role_at_least(dataset_role(dataset, user), ADMIN)


def record_counts_shown(*, record: Record, dataset: Dataset, is_admin: bool, own_status: str | None) -> tuple[int, bool]:
    """(submitted_count, completed) of a record as the caller reads them (next, the record API).
    An annotator must not tell a gold record from an ordinary one: gold is answered by everyone and
    always complete, so to anyone but an admin it reads as a record only the caller answered:
    their own submit counted, complete by the dataset's overlap. Admins read the stored values."""
    if is_admin or not record.is_gold:
        return record.submitted_count, record.completed
    submitted = int(own_status == Response.Status.SUBMITTED)
    return submitted, submitted >= dataset.min_submitted


def _completed_shown_q(*, dataset: Dataset, user, mine_submitted) -> Q:
    """The records an annotator reads as completed (record_counts_shown, as a filter)."""
    ordinary = Q(completed=True, is_gold=False)
    if dataset.min_submitted <= 1:
        return ordinary | (Q(is_gold=True) & Q(Exists(mine_submitted)))
    return ordinary


def suggestions_shown_for(*, record: Record, user, dataset: Dataset, has_suggestions: bool | None = None) -> bool | None:
    """Whether the judges' suggestions are shown to `user` with `record` (the anchoring experiment):
    None when there is nothing to show (the dataset does not show suggestions, or the record has
    none), else whether this (record, user) assignment falls in the dataset's suggestion_share.
    The one rule for the next API, the record API, the annotate page and Response.suggestion_shown.
    `has_suggestions`: whether the record has any, when the caller knows (else one query)."""
    if not dataset.show_suggestions:
        return None
    if has_suggestions is None:
        has_suggestions = Suggestion.objects.filter(record_id=record.pk).exists()
    if not has_suggestions:
        return None
    return suggestion_assigned(record_id=record.pk, user_id=user.pk, share=dataset.suggestion_share)


# The questions of a dataset, kept per process: every response submit validates against them.
# Keyed by the dataset's updated_at, which dataset_update moves forward.
_QUESTIONS_CACHE: dict[int, tuple[Any, list[Question]]] = {}


def dataset_questions(dataset: Dataset) -> list[Question]:
    """The dataset's questions, from a per-process cache while the dataset is unchanged."""
    hit = _QUESTIONS_CACHE.get(dataset.pk)
    if hit is not None and hit[0] == dataset.updated_at:
        return hit[1]
    questions = list(dataset.questions.all())
    if len(_QUESTIONS_CACHE) > 1000:
        _QUESTIONS_CACHE.clear()
    _QUESTIONS_CACHE[dataset.pk] = (dataset.updated_at, questions)
    return questions


def field_titles(dataset: Dataset) -> dict[str, str]:
    """What admins and annotators read for each field: its title, else its name."""
    return {name: title or name for name, title in dataset.fields.values_list("name", "title")}


def ranking_question(dataset: Dataset) -> Question | None:
    return dataset.questions.filter(kind=Question.Kind.RANKING).order_by("position", "id").first()


def ranked_fields(dataset: Dataset) -> list[str]:
    """The field names the dataset's ranking question ranks (or the compared pair of a rating)."""
    return ranked_fields_of(dataset.questions.all())


def compared_fields(question: Question) -> list[str] | None:
    """The two fields a pairwise question compares (options.compares of a comparison rating or of a
    graded preference); None for any other question. Readers pass it to ranks_from_value."""
    compares = (question.options or {}).get("compares")
    if question.kind in (Question.Kind.RATING, Question.Kind.PREFERENCE) and compares:
        return list(compares)
    return None


def ranked_question_of(questions: Iterable[Question]) -> Question | None:
    """The question that orders a dataset's responses, from its questions in their order
    (position, id): the first ranking question, else the first pairwise question (a comparison
    rating or a graded preference, options.compares)."""
    questions = list(questions)
    return (next((q for q in questions if q.kind == Question.Kind.RANKING), None)
            or next((q for q in questions if compared_fields(q)), None))


def ranked_fields_of(questions: Iterable[Question]) -> list[str]:
    """ranked_fields from a dataset's questions already at hand: the fields ranked_question_of ranks
    (a pairwise question: the pair it compares)."""
    question = ranked_question_of(questions)
    if question is None:
        return []
    return compared_fields(question) or list((question.options or {}).get("values", []))


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


# How old the dataset's record counts on the annotate page may be: counting a million records takes
# longer than the whole page may, so they are counted at most once per this many seconds (cached).
COMPLETION_SNAPSHOT_SECONDS = 10


def annotator_progress(*, dataset: Dataset, user) -> dict[str, int]:
    """An annotator's progress in a dataset, as the annotate page shows it (after Argilla's):
    their own submitted / discarded / draft responses, how many records are left for them (not
    completed, not submitted or discarded by them), and the dataset's completion.

    The caller's own counts are live (one query over their responses); the dataset's record
    counts come from a snapshot at most COMPLETION_SNAPSHOT_SECONDS old, to which the records the
    caller completed since are added, so their own submits show at once."""
    key = f"preflab:completion:{dataset.pk}:{dataset.created_at.timestamp() if dataset.created_at else ''}"
    snapshot = cache.get(key)
    if snapshot is None:
        snapshot = Record.objects.filter(dataset=dataset).aggregate(
            records=Count("id"), completed=Count("id", filter=Q(completed=True)))
        snapshot["at"] = timezone.now()
        cache.set(key, snapshot, COMPLETION_SNAPSHOT_SECONDS)
    submitted, discarded = Response.Status.SUBMITTED, Response.Status.DISCARDED
    mine = Response.objects.filter(dataset=dataset, user=user).aggregate(
        submitted=Count("id", filter=Q(status=submitted)),
        discarded=Count("id", filter=Q(status=discarded)),
        draft=Count("id", filter=Q(status=Response.Status.DRAFT)),
        answered_open=Count("id", filter=Q(status__in=[submitted, discarded], record__completed=False)),
        completed_since=Count("id", filter=Q(status=submitted, record__completed=True, record__is_gold=False,
                                              updated_at__gte=snapshot["at"])))
    records = snapshot["records"]
    completed = min(records, snapshot["completed"] + mine["completed_since"])
    return {"submitted": mine["submitted"], "discarded": mine["discarded"], "draft": mine["draft"],
            "left": max(0, records - completed - mine["answered_open"]),
            "records": records, "completed": completed}

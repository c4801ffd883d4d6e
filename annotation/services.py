"""Writes of the annotation app (HackSoft style: `<entity>_<action>`, keyword-only, atomic).

Task distribution (`next_record_for`) and response submission keep Record.submitted_count,
Record.leased_count and Record.completed consistent under concurrency: locks are always taken
lease first, then record, so the two flows cannot deadlock each other.
"""
from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Greatest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from .bulk import IdsIn, json_text, rows_upsert
from .errors import AnnotatorPaused, ConflictError
from .hotpath import hot_cursor, hot_transaction, instance_from_db, relate
from .models import Dataset, Field, Invitation, Lease, Membership, Question, Record, Response, Suggestion, Workspace
from .quality.gold import record_completed, record_completed_q
from .quality.options import QUALITY_SETTINGS, quality_settings_validate
from .quality.serving import gold_due
from .quality.standing import annotator_paused, gold_policy_apply, pause_reason_text
from .selectors import dataset_questions, invitations_for, suggestions_shown_for
from .validation import (
    display_name_validate,
    field_specs_validate,
    question_specs_validate,
    question_value_validate,
    response_values_validate,
)

User = get_user_model()


# --- workspaces and members --------------------------------------------------------------------

@transaction.atomic
def workspace_create(*, name: str, creator=None) -> Workspace:
    if Workspace.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a workspace named {name!r} exists"})
    ws = Workspace.objects.create(name=name)
    if creator is not None:
        Membership.objects.create(user=creator, workspace=ws, role=Membership.Role.ADMIN)
    return ws


@transaction.atomic
def member_upsert(*, workspace: Workspace, username: str, role: str, password: str | None = None,
                  is_simulated: bool = False) -> tuple[Membership, str, bool]:
    """Add (or re-role) a member, creating the user if needed. Returns (membership, token, created_user)."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Membership.Role.values)}"})
    if not username or len(username) > 150:
        raise ValidationError({"username": "required, at most 150 characters"})
    display_name_validate(username, field="username")
    if role != Membership.Role.ADMIN:
        _admin_kept(workspace=workspace, username=username)
    user, created = User.objects.get_or_create(username=username)
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(
        user=user, workspace=workspace, defaults={"role": role, "is_simulated": is_simulated})
    token, _ = Token.objects.get_or_create(user=user)
    return membership, token.key, created


# What a workspace admin is told after inviting someone: the same words whether an account by that
# name exists or not, and nothing about the workspaces it belongs to.
INVITED_MESSAGE = ("{invitee} is invited as {role}. If an account with this user name or e-mail address exists, "
                   "it joins {workspace} once it accepts the invitation on its account page.")


@dataclass
class MemberAdded:
    membership: Membership | None   # None: an invitation was recorded instead
    token: str | None
    created: bool                   # a new account was made
    invited: bool
    message: str


@transaction.atomic
def member_add(*, actor, workspace: Workspace, username: str, role: str, password: str | None = None,
               is_simulated: bool = False) -> MemberAdded:
    """What the members page and API do with "add this user as <role>" (the caller checked that
    `actor` administers the workspace, and member_password_check).

    Staff add any account, or create it. A workspace admin changes the role of a member of this
    workspace, creates a new account (a user name nobody has, with a password), and otherwise
    invites: an account of the installation joins only once it accepts (invitation_accept), and the
    admin learns nothing about it (the same answer whether it exists or not)."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Membership.Role.values)}"})
    if not isinstance(username, str) or not username or len(username) > 254:
        raise ValidationError({"username": "required, a user name or an e-mail address (at most 254 characters)"})
    display_name_validate(username, field="username")
    direct = actor.is_staff or Membership.objects.filter(workspace=workspace, user__username=username).exists()
    if not direct and password and not User.objects.filter(username=username).exists():
        direct = True  # a new account, made by this admin
    if direct:
        membership, token, created = member_upsert(workspace=workspace, username=username, role=role,
                                                   password=password, is_simulated=is_simulated)
        return MemberAdded(membership=membership, token=token, created=created, invited=False,
                           message=f"{username} {'added' if created else 'updated'} as {role}.")
    Invitation.objects.update_or_create(workspace=workspace, invitee=username,
                                        defaults={"role": role, "invited_by": actor})
    return MemberAdded(membership=None, token=None, created=False, invited=True,
                       message=INVITED_MESSAGE.format(invitee=username, role=role, workspace=workspace.name))


@transaction.atomic
def invitation_answer(*, user, invitation_id: Any, accept: bool) -> Invitation:
    """Accept (join the workspace with the invited role; a member keeps the role they have) or
    decline one of the user's invitations; either way it is gone afterwards. ValidationError when
    there is no such invitation for this account."""
    from .access import parse_pk

    invitation = invitations_for(user).select_for_update(of=("self",)).filter(pk=parse_pk(invitation_id)).first()
    if invitation is None:
        raise ValidationError({"invitation": "no such invitation for your account (it may have been answered already)"})
    if accept:
        Membership.objects.get_or_create(user=user, workspace=invitation.workspace, defaults={"role": invitation.role})
    invitations_for(user).filter(workspace=invitation.workspace).delete()
    return invitation


@transaction.atomic
def imported_annotator_get(*, workspace: Workspace, name: str):
    """The account of an imported annotator (an Argilla user_id, ...): a user with an unusable
    password, an annotator of the workspace flagged is_imported. An existing member keeps their role."""
    username = display_name_validate(name[:150], field="user_id")
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Membership.objects.get_or_create(user=user, workspace=workspace,
                                     defaults={"role": Membership.Role.ANNOTATOR, "is_imported": True})
    return user


def member_password_check(*, actor, username: str, password: str | None) -> None:
    """Who may set a password through the members page and API: a workspace admin sets the
    password of a user they create, never of an existing account (it may belong to other
    workspaces, or be staff, or be their own); staff may set any. ValidationError on "password"."""
    if not password or actor.is_staff or not User.objects.filter(username=username).exists():
        return
    raise ValidationError({"password": "this user already exists: leave the password empty "
                                       "(only staff may set the password of an existing user)"})


def _admin_kept(*, workspace: Workspace, username: str) -> None:
    """A workspace keeps at least one admin: its last one can be neither demoted nor removed."""
    admins = Membership.objects.select_for_update().filter(workspace=workspace, role=Membership.Role.ADMIN)
    names = list(admins.values_list("user__username", flat=True))
    if names == [username]:
        raise ValidationError({"role": f"{username} is the only admin of {workspace.name}: make someone else "
                                       "admin first"})


@transaction.atomic
def member_remove(*, workspace: Workspace, user) -> None:
    _admin_kept(workspace=workspace, username=user.username)
    Membership.objects.filter(workspace=workspace, user=user).delete()
    Lease.objects.filter(dataset__workspace=workspace, user=user).delete()


def api_token_get(*, user) -> Token:
    """The user's API token (DRF authtoken), created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def api_token_rotate(*, user) -> Token:
    """Replace the user's API token: the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


# --- datasets ----------------------------------------------------------------------------------

DATASET_SETTINGS = ("guidelines", "min_submitted", "allow_ties", "show_suggestions", "shuffle_responses",
                    "prompt_field", "visible_metadata", *QUALITY_SETTINGS)


@transaction.atomic
def dataset_create(*, workspace: Workspace, name: str, fields: list[dict], questions: list[dict],
                   created_by=None, **settings_: Any) -> Dataset:
    unknown = set(settings_) - set(DATASET_SETTINGS)
    if unknown:
        raise ValidationError({"dataset": f"unknown settings: {', '.join(sorted(unknown))}"})
    if not name or len(name) > 200:
        raise ValidationError({"name": "required, at most 200 characters"})
    if Dataset.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError({"name": f"a dataset named {name!r} exists in this workspace"})
    field_specs = field_specs_validate(fields)
    question_specs = question_specs_validate(questions, {f["name"] for f in field_specs})
    # the prompt field (default "prompt") must be a field: refused here, not when exporting
    _dataset_settings_validate({"prompt_field": "prompt", **settings_}, field_names={f["name"] for f in field_specs})
    dataset = Dataset.objects.create(workspace=workspace, name=name, created_by=created_by, **settings_)
    Field.objects.bulk_create(Field(dataset=dataset, **f) for f in field_specs)
    Question.objects.bulk_create(Question(dataset=dataset, **q) for q in question_specs)
    return dataset


def response_field_names(n: int) -> list[str]:
    """response-1 .. response-n: the fields that hold the n responses to a record's prompt."""
    return [f"response-{i}" for i in range(1, n + 1)]


EXTRA_QUESTIONS = {
    "rating": {"name": "quality", "title": "How good is the best response?", "kind": "rating",
               "required": False, "options": {"values": [1, 2, 3, 4, 5]}},
    "flags": {"name": "flags", "title": "Flags", "kind": "label", "required": False,
              "options": {"values": ["harmful", "factual error", "refusal"], "multiple": True}},
    "comment": {"name": "comment", "title": "Comment", "kind": "text", "required": False, "options": {}},
}


def pairwise_dataset_spec(*, responses: int, prompt_kind: str = "markdown", response_kind: str = "markdown",
                          ranking_title: str = "Rank the responses, best first",
                          extra: Iterable[str] = (), graded: bool = False) -> tuple[list[dict], list[dict]]:
    """The fields and questions (dataset_create's input) of the usual preference dataset: a `prompt`
    field, `responses` response fields (response_field_names) and a ranking question `ranking` over
    them — or, with `graded` (two responses only), a graded preference `preference` between them
    (the default strength scale, "both are bad" offered); `extra` adds optional questions by name
    (see EXTRA_QUESTIONS: rating, flags, comment)."""
    names = response_field_names(responses)
    fields = [{"name": "prompt", "title": "Prompt", "kind": prompt_kind}]
    fields += [{"name": n, "title": f"Response {i}", "kind": response_kind} for i, n in enumerate(names, start=1)]
    if graded:
        if responses != 2:
            raise ValidationError({"responses": "a graded preference compares exactly two responses"})
        questions = [{"name": "preference", "title": "Which response is better, and by how much?",
                      "kind": "preference", "options": {"compares": names, "both_bad": True}}]
    else:
        questions = [{"name": "ranking", "title": ranking_title, "kind": "ranking", "options": {"values": names}}]
    questions += [copy.deepcopy(spec) for key, spec in EXTRA_QUESTIONS.items() if key in extra]
    return fields, questions


def _dataset_settings_validate(values: dict, *, field_names: set[str]) -> None:
    quality_settings_validate(values)
    if "min_submitted" in values:
        n = values["min_submitted"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100:
            raise ValidationError({"min_submitted": "an integer from 1 to 100"})
    if "prompt_field" in values and values["prompt_field"] not in field_names:
        raise ValidationError({"prompt_field": f"{values['prompt_field']!r} is not a field of this dataset"})
    for flag in ("allow_ties", "show_suggestions", "shuffle_responses"):
        if flag in values and not isinstance(values[flag], bool):
            raise ValidationError({flag: "must be true or false"})
    if "guidelines" in values and not isinstance(values["guidelines"], str):
        raise ValidationError({"guidelines": "must be a string"})
    if "visible_metadata" in values:
        values["visible_metadata"] = visible_metadata_validate(values["visible_metadata"])


METADATA_KEY_MAX = 100


def visible_metadata_validate(keys: Any) -> list[str]:
    """The metadata keys a dataset shows to annotators: a list of distinct top-level key names."""
    if not isinstance(keys, list) or not all(isinstance(k, str) and 0 < len(k) <= METADATA_KEY_MAX for k in keys):
        raise ValidationError({"visible_metadata": f"a list of metadata key names (1 to {METADATA_KEY_MAX} characters)"})
    return list(dict.fromkeys(keys))


@transaction.atomic
def dataset_update(*, dataset: Dataset, **changes: Any) -> Dataset:
    allowed = set(DATASET_SETTINGS) | {"name", "status"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({"dataset": f"cannot change: {', '.join(sorted(unknown))}"})
    _dataset_settings_validate(changes, field_names=set(dataset.fields.values_list("name", flat=True)))
    if "status" in changes and changes["status"] not in Dataset.Status.values:
        raise ValidationError({"status": f"must be one of {', '.join(Dataset.Status.values)}"})
    if "name" in changes and Dataset.objects.filter(workspace=dataset.workspace_id, name=changes["name"]).exclude(pk=dataset.pk).exists():
        raise ValidationError({"name": "a dataset with this name exists in this workspace"})
    old_min = dataset.min_submitted
    for key, value in changes.items():
        setattr(dataset, key, value)
    dataset.save()
    if dataset.min_submitted != old_min:
        records_completion_refresh(dataset=dataset)
    return dataset


def records_completion_refresh(*, dataset: Dataset) -> int:
    return Record.objects.filter(dataset=dataset).update(completed=record_completed_q(dataset))


def dataset_publish(*, dataset: Dataset) -> Dataset:
    if not dataset.questions.exists():
        raise ValidationError({"questions": "a dataset needs at least one question to be published"})
    dataset.status = Dataset.Status.PUBLISHED
    dataset.save(update_fields=["status", "updated_at"])
    return dataset


def dataset_unpublish(*, dataset: Dataset) -> Dataset:
    """Close a published (or archived) dataset to annotators; its answers are kept."""
    return dataset_update(dataset=dataset, status=Dataset.Status.DRAFT)


def dataset_archive(*, dataset: Dataset) -> Dataset:
    """Close a dataset for good but keep it (answers, exports); unpublish or publish it to reopen."""
    return dataset_update(dataset=dataset, status=Dataset.Status.ARCHIVED)


def _rows_delete(queryset, *, seen: tuple = ()) -> int:
    """Delete the rows of `queryset` and, first, every row that depends on them, in SQL: one
    DELETE ... WHERE fk IN (SELECT ...) per dependent table, children before parents, whatever
    app the dependent model lives in (found through the model's relations, so annotation imports
    no other app). SET_NULL references are cleared; PROTECT/RESTRICT ones refuse."""
    model = queryset.model
    for rel in model._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)):
            continue
        child = rel.related_model
        children = child._base_manager.filter(**{f"{rel.field.name}__in": queryset.values("pk")})
        on_delete = rel.on_delete
        if on_delete is models.CASCADE:
            if child in seen:
                continue
            _rows_delete(children, seen=(*seen, model))
        elif on_delete is models.SET_NULL:
            children.update(**{rel.field.name: None})
        elif on_delete in (models.PROTECT, models.RESTRICT) and children.exists():
            raise ValidationError({"dataset": f"{child._meta.verbose_name_plural} still refer to it; remove them first"})
    return queryset._raw_delete(queryset.db)


DELETE_BATCH = 20_000


def dataset_records_delete(*, dataset_id: int, limit: int = DELETE_BATCH) -> int:
    """Delete the first `limit` records of a dataset (by id) and what depends on them, in SQL, in
    one transaction; returns how many went (0: none left). The "dataset_delete" job loops on it."""
    with transaction.atomic():
        ids = list(Record.objects.filter(dataset_id=dataset_id).order_by("pk").values_list("pk", flat=True)[:limit])
        if ids:
            _rows_delete(Record.objects.filter(dataset_id=dataset_id, pk__gte=ids[0], pk__lte=ids[-1]))
    return len(ids)


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> dict:
    """Delete a dataset with everything in it (records, responses, suggestions, leases, jobs and
    what other apps hang on them) in one transaction, in SQL by dataset id: no row is loaded,
    so a million records take seconds, not an ORM cascade's minutes. Returns counts of what went."""
    counts = {"records": Record.objects.filter(dataset_id=dataset.pk).count(),
              "responses": Response.objects.filter(dataset_id=dataset.pk).count()}
    Dataset.objects.select_for_update().filter(pk=dataset.pk).values_list("pk").first()
    _rows_delete(Dataset.objects.filter(pk=dataset.pk))
    return counts


def dataset_delete_or_enqueue(*, dataset: Dataset, user) -> tuple[dict | None, object | None]:
    """The one rule for deleting a dataset from a request (page or API): up to
    PREFLAB_DELETE_IN_REQUEST_MAX records go at once (returns their counts, no job); a bigger
    dataset is archived at once, so nobody annotates it meanwhile, and a "dataset_delete" job
    removes it in batches (returns the job)."""
    from django.conf import settings

    if Record.objects.filter(dataset_id=dataset.pk).count() <= settings.PREFLAB_DELETE_IN_REQUEST_MAX:
        return dataset_delete(dataset=dataset), None
    from .jobs import job_create

    dataset_archive(dataset=dataset)
    job = job_create(kind="dataset_delete", workspace=dataset.workspace, created_by=user,
                     name=f"delete {dataset.name}"[:200], params={"dataset": dataset.pk, "name": dataset.name})
    return None, job


# --- records -----------------------------------------------------------------------------------

@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0


def records_upsert(*, dataset: Dataset, rows: list[dict]) -> UpsertCounts:
    """Insert or update one batch of already validated rows (see validation.record_validate).

    Within a batch the last row with a given external_id wins. Updating a record replaces its
    fields and metadata but keeps its responses, suggestions and counters.
    """
    by_id: dict[str, dict] = {}
    for row in rows:
        by_id[row["external_id"]] = row
    if not by_id:
        return UpsertCounts()
    with transaction.atomic():
        existing = set(Record.objects.filter(dataset=dataset, external_id__in=list(by_id))
                       .values_list("external_id", flat=True))
        now = timezone.now()
        objs = [Record(dataset=dataset, external_id=eid, fields=r["fields"], metadata=r["metadata"],
                       priority=r.get("priority", 0.0), created_at=now, updated_at=now)
                for eid, r in by_id.items()]
        Record.objects.bulk_create(objs, batch_size=1000, update_conflicts=True,
                                   unique_fields=["dataset", "external_id"],
                                   update_fields=["fields", "metadata", "priority", "updated_at"])
    return UpsertCounts(created=len(by_id) - len(existing), updated=len(existing))


# --- distribution ------------------------------------------------------------------------------

def _lease_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.PREFLAB_LEASE_SECONDS)


def leases_reclaim(*, dataset: Dataset, now: datetime | None = None, limit: int = 500) -> int:
    """Release expired leases of a dataset so their records can be handed out again."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        # One statement: lock the expired leases (lease first, then record: the order every flow
        # keeps), delete them and give their slots back to the records.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_RECLAIM_SQL, {"ds": dataset.pk, "now": now, "limit": limit})
            return int(cursor.fetchone()[0])
    with transaction.atomic():
        expired = list(Lease.objects.filter(dataset=dataset, expires_at__lte=now)
                       .select_for_update(skip_locked=True).values_list("id", "record_id")[:limit])
        if not expired:
            return 0
        Lease.objects.filter(id__in=[lid for lid, _ in expired]).delete()
        for _, record_id in expired:
            Record.objects.filter(pk=record_id).update(leased_count=Greatest(F("leased_count") - 1, 0))
    return len(expired)


_RECLAIM_SQL = """
WITH expired AS (
    SELECT id FROM annotation_lease
    WHERE dataset_id = %(ds)s AND expires_at <= %(now)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM annotation_lease l USING expired e WHERE l.id = e.id RETURNING l.record_id
), per_record AS (
    SELECT record_id, count(*) AS n FROM gone GROUP BY record_id
), released AS (
    UPDATE annotation_record rec SET leased_count = GREATEST(rec.leased_count - per_record.n, 0)
    FROM per_record WHERE rec.id = per_record.record_id
    RETURNING rec.id
)
SELECT coalesce(sum(n), 0) FROM per_record
"""


def next_record_for(user, dataset: Dataset, *, now: datetime | None = None) -> Record | None:
    """The next record this annotator should answer, or None when nothing is left for them.

    Order: the user's own open lease or draft first (resume), then open records by priority
    (highest first) then id. A record is never handed to a user who already answered it, nor
    handed out once submitted + leased reaches the dataset's min_submitted (+ the record's
    extra_wanted). On PostgreSQL rows are locked with SKIP LOCKED so concurrent annotators never
    wait on or share the last slot.

    Gold records (always completed, so the ordinary search never finds them) are handed to every
    annotator whatever the overlap, when the schedule says one is due (quality.serving.gold_due, at
    dataset.gold_rate): the first gold record (by id) the user has no response to; an ordinary
    record when none is left. A gold record is leased like any other (resume works).

    AnnotatorPaused when the annotator is paused on the dataset: no record, not even the one they
    hold (they may still answer it: response_upsert admits it).
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _next_record_pg(user, dataset, now)
    reason = annotator_paused(dataset=dataset, user=user)
    if reason is not None:
        raise AnnotatorPaused(reason)
    own = (Lease.objects.filter(dataset=dataset, user=user, expires_at__gt=now)
           .order_by("created_at").values_list("id", "record_id").first())
    if own is not None:
        Lease.objects.filter(pk=own[0]).update(expires_at=_lease_expiry(now))
        return Record.objects.get(pk=own[1])
    open_or_gold = Q(completed=False) | Q(is_gold=True)  # a draft on a gold record is resumed too
    draft_record_id = (Response.objects.filter(dataset=dataset, user=user, status=Response.Status.DRAFT)
                       .filter(Q(record__completed=False) | Q(record__is_gold=True))
                       .order_by("updated_at").values_list("record_id", flat=True).first())
    if Lease.objects.filter(dataset=dataset, expires_at__lte=now).exists():
        leases_reclaim(dataset=dataset, now=now)
    gold_first = draft_record_id is None and _gold_is_due(user, dataset, handed=None)
    unanswered = Exists(Response.objects.filter(record=OuterRef("pk"), user=user))
    for _attempt in range(4):
        with transaction.atomic():
            if draft_record_id is not None:
                candidates = Record.objects.filter(open_or_gold, dataset=dataset, pk=draft_record_id)
            elif gold_first:
                candidates = Record.objects.filter(dataset=dataset, is_gold=True).exclude(unanswered).order_by("id")
            else:
                candidates = (Record.objects.filter(dataset=dataset, completed=False)
                              .alias(load=F("submitted_count") + F("leased_count"))
                              .filter(load__lt=F("extra_wanted") + dataset.min_submitted)
                              .exclude(unanswered)
                              .order_by("-priority", "id"))
            record = candidates.select_for_update(skip_locked=True, of=("self",)).first()
            if record is None:
                if draft_record_id is not None:
                    draft_record_id = None
                    continue
                if gold_first:  # gold due but none left for this user: an ordinary record
                    gold_first = False
                    continue
                return None
            try:
                with transaction.atomic():
                    Lease.objects.create(record=record, dataset=dataset, user=user, expires_at=_lease_expiry(now))
            except IntegrityError:
                continue  # this user's concurrent request leased it first: look again
            Record.objects.filter(pk=record.pk).update(leased_count=F("leased_count") + 1)
            record.leased_count += 1
            return record
    return None


def _gold_is_due(user, dataset: Dataset, *, handed: int | None) -> bool:
    """Whether the annotator's next new record should be gold (quality.serving.gold_due). `handed`:
    how many records of the dataset they have a response to, None to count them here (the ORM path;
    the PostgreSQL path reads it with the resume statement, only when the dataset has gold)."""
    if not dataset.gold_rate or dataset.gold_rate <= 0:
        return False
    if handed is None:
        if not Record.objects.filter(dataset=dataset, is_gold=True).exists():
            return False
        handed = Response.objects.filter(dataset=dataset, user=user).count()
    return gold_due(dataset_id=dataset.pk, user_id=user.pk, handed=handed, rate=dataset.gold_rate)


# PostgreSQL fast path of next_record_for: the same rules in two or three statements instead of
# ~11 ORM queries (the ORM's Python cost per query dominated the SQL, which takes ~0.05 ms).
_RECORD_ATTNAMES = [f.attname for f in Record._meta.concrete_fields]
_RECORD_COLS = ", ".join(f'rec."{f.column}"' for f in Record._meta.concrete_fields)
_RECORD_JSON_IDX = [i for i, f in enumerate(Record._meta.concrete_fields) if f.get_internal_type() == "JSONField"]

# The caller's own open lease (its expiry pushed back), their oldest open draft (a gold record's
# too), whether the dataset has expired leases to reclaim, whether the caller is paused (and why;
# a paused caller's lease is left as it is), and, when the dataset serves gold and has any and the
# caller holds no lease, how many of its records the caller has a response to (the gold schedule's
# count: an index-only scan of response_user_idx, ~1 ms for 10,000 answers): one round trip.
_RESUME_SQL = """
WITH standing AS (
    SELECT reason FROM annotation_annotatorstanding
    WHERE dataset_id = %(ds)s AND user_id = %(u)s AND paused
), own AS (
    UPDATE annotation_lease SET expires_at = %(exp)s
    WHERE id = (SELECT id FROM annotation_lease
                WHERE dataset_id = %(ds)s AND user_id = %(u)s AND expires_at > %(now)s
                ORDER BY created_at LIMIT 1)
      AND NOT EXISTS (SELECT 1 FROM standing)
    RETURNING record_id
)
SELECT (SELECT record_id FROM own),
       (SELECT r.record_id FROM annotation_response r JOIN annotation_record d ON d.id = r.record_id
        WHERE r.dataset_id = %(ds)s AND r.user_id = %(u)s AND r.status = 'draft' AND (NOT d.completed OR d.is_gold)
        ORDER BY r.updated_at LIMIT 1),
       EXISTS (SELECT 1 FROM annotation_lease WHERE dataset_id = %(ds)s AND expires_at <= %(now)s),
       EXISTS (SELECT 1 FROM standing),
       (SELECT reason FROM standing),
       CASE WHEN %(gold_on)s AND NOT EXISTS (SELECT 1 FROM own)
                 AND EXISTS (SELECT 1 FROM annotation_record WHERE dataset_id = %(ds)s AND is_gold)
            THEN (SELECT count(*) FROM annotation_response WHERE dataset_id = %(ds)s AND user_id = %(u)s) END
"""

# Pick the candidate (row lock, SKIP LOCKED), insert the lease (a concurrent request of the same
# user that leased it first makes the insert a no-op) and count it on the record: one statement.
# The result row says whether a candidate was found (cand.id) and, if the lease went in, the record
# and whether it has suggestions (what the next answer shows depends on it: read here, the answer
# needs no statement of its own; Record._preflab_has_suggestions).
_CLAIM_SQL = """
WITH cand AS (
    SELECT rec.id FROM annotation_record rec
    WHERE rec.dataset_id = %(ds)s AND {condition}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE OF rec SKIP LOCKED
), ins AS (
    INSERT INTO annotation_lease (record_id, dataset_id, user_id, expires_at, created_at)
    SELECT cand.id, %(ds)s, %(u)s, %(exp)s, %(now)s FROM cand
    ON CONFLICT (record_id, user_id) DO NOTHING
    RETURNING record_id
), upd AS (
    UPDATE annotation_record rec SET leased_count = rec.leased_count + 1
    FROM ins WHERE rec.id = ins.record_id
    RETURNING {cols}
), async_commit AS (
    -- A lease is a soft reservation: its commit need not wait for the WAL flush (one disk sync
    -- less per call). A database crash can only forget the latest leases, together with their
    -- leased_count (same transaction); responses stay fully durable.
    SELECT set_config('synchronous_commit', 'off', true)
)
SELECT cand.id, upd.*, EXISTS (SELECT 1 FROM annotation_suggestion s WHERE s.record_id = upd.id)
FROM cand CROSS JOIN async_commit LEFT JOIN upd ON true
"""
_UNANSWERED = "NOT EXISTS (SELECT 1 FROM annotation_response r WHERE r.record_id = rec.id AND r.user_id = %(u)s)"
_CLAIM_OPEN_SQL = _CLAIM_SQL.format(cols=_RECORD_COLS, order="rec.priority DESC, rec.id", condition=(
    "NOT rec.completed AND rec.submitted_count + rec.leased_count < %(min)s + rec.extra_wanted AND " + _UNANSWERED))
_CLAIM_DRAFT_SQL = _CLAIM_SQL.format(cols=_RECORD_COLS, order="rec.id",
                                     condition="rec.id = %(draft)s AND (NOT rec.completed OR rec.is_gold)")
# A gold record the caller has no response to (the partial index record_gold_idx, in id order).
_CLAIM_GOLD_SQL = _CLAIM_SQL.format(cols=_RECORD_COLS, order="rec.id", condition="rec.is_gold AND " + _UNANSWERED)


def _record_from_row(values) -> Record:
    values = list(values)
    for i in _RECORD_JSON_IDX:  # Django reads jsonb as text and decodes it in the field
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return instance_from_db(Record, _RECORD_ATTNAMES, values)


def _next_record_pg(user, dataset: Dataset, now: datetime) -> Record | None:
    params = {"ds": dataset.pk, "u": user.pk, "now": now, "exp": _lease_expiry(now),
              "min": dataset.min_submitted, "draft": None, "gold_on": bool(dataset.gold_rate and dataset.gold_rate > 0)}
    with hot_cursor() as cursor:
        cursor.execute(_RESUME_SQL, params)
        own_record_id, draft_record_id, has_expired, paused, reason, handed = cursor.fetchone()
        if paused:
            raise AnnotatorPaused(pause_reason_text(reason))
        if own_record_id is not None:
            cursor.execute(f"SELECT {_RECORD_COLS}, EXISTS (SELECT 1 FROM annotation_suggestion s "
                           "WHERE s.record_id = rec.id) FROM annotation_record rec WHERE rec.id = %s", [own_record_id])
            row = cursor.fetchone()
            if row is not None:
                record = _record_from_row(row[:-1])
                record._preflab_has_suggestions = row[-1]
                return record
    if has_expired:
        leases_reclaim(dataset=dataset, now=now)
    gold_first = draft_record_id is None and handed is not None and _gold_is_due(user, dataset, handed=handed)
    for _attempt in range(4):
        # One statement, so atomic on its own (no BEGIN/COMMIT round trips).
        with hot_cursor() as cursor:
            if draft_record_id is not None:
                cursor.execute(_CLAIM_DRAFT_SQL, {**params, "draft": draft_record_id})
            elif gold_first:
                cursor.execute(_CLAIM_GOLD_SQL, params)
            else:
                cursor.execute(_CLAIM_OPEN_SQL, params)
            row = cursor.fetchone()
        if row is None:  # no candidate
            if draft_record_id is not None:
                draft_record_id = None
                continue
            if gold_first:  # gold due but none left for this user: an ordinary record
                gold_first = False
                continue
            return None
        if row[1] is None:
            continue  # this user's concurrent request leased it first: look again
        record = _record_from_row(row[1:-1])
        record._preflab_has_suggestions = row[-1]
        if draft_record_id is None:
            # the search excluded records the user answered: the caller need not look for a response
            record._preflab_unanswered = True
        return record
    return None


# --- responses ---------------------------------------------------------------------------------

@dataclass
class ResponseResult:
    response: Response
    created: bool
    over_assigned: bool = False
    warnings: list[str] = field(default_factory=list)


def display_order_for(*, record: Record, user_id: int, field_names: list[str], shuffle: bool) -> list[str]:
    """The order in which a record's ranked fields are shown to one annotator.

    Deterministic per (record, user), so a reload shows the same order; stored with the response.
    """
    order = list(field_names)
    if shuffle and len(order) > 1:
        random.Random(f"{record.pk}:{user_id}").shuffle(order)
    return order


def response_upsert(*, user, record: Record, values: Any, status: str,
                    display_order: list[str] | None = None, duration: float | None = None,
                    add_duration: bool = False) -> ResponseResult:
    """Create or replace the user's response to a record, keeping the record's counters right.

    A submit beyond min_submitted is stored all the same (nothing is lost) and flagged.
    `duration` replaces the stored time unless `add_duration` (the UI adds each visit's time).
    """
    if status not in Response.Status.values:
        raise ValidationError({"status": f"must be one of {', '.join(Response.Status.values)}"})
    dataset = record.dataset
    questions = dataset_questions(dataset)
    clean = response_values_validate(questions=questions, values=values, status=status,
                                     allow_ties=dataset.allow_ties)
    if display_order is not None:
        if not isinstance(display_order, list) or not all(isinstance(x, str) for x in display_order):
            raise ValidationError({"display_order": "a list of field names"})
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise ValidationError({"duration": "a non-negative number of seconds"})
        duration = min(float(duration), 24 * 3600.0)
    if connection.vendor == "postgresql":
        response, created, submitted, leased, delta = _response_write_pg(
            user=user, record=record, clean=clean, status=status, display_order=display_order,
            duration=duration, add_duration=add_duration)
    else:
        response, created, submitted, leased, delta = _response_write_orm(
            user=user, record=record, clean=clean, status=status, display_order=display_order,
            duration=duration, add_duration=add_duration)
    # (the writers set record.is_gold and record.extra_wanted as read under the record's lock)
    wanted = dataset.min_submitted + record.extra_wanted
    record.submitted_count, record.leased_count = submitted, leased
    record.completed = record_completed(is_gold=record.is_gold, submitted=submitted,
                                        min_submitted=dataset.min_submitted, extra_wanted=record.extra_wanted)
    result = ResponseResult(response=response, created=created)
    # a gold record is answered by everyone: never over-assigned (nor told apart by a warning)
    if delta > 0 and not record.is_gold and submitted > wanted:
        result.over_assigned = True
        result.warnings.append(
            f"this record now has {submitted} submitted responses, more than the {wanted} wanted; "
            "your response is stored")
    if record.is_gold and status == Response.Status.SUBMITTED:
        gold_policy_apply(dataset=dataset, user=user)
    return result


def _slot_taking_allowed(*, user, dataset: Dataset) -> None:
    """A paused annotator gets no new records: an answer that would take a free slot of a record
    they were not handed is refused (AnnotatorPaused). Their held record and drafts stay theirs."""
    reason = annotator_paused(dataset=dataset, user=user)
    if reason is not None:
        raise AnnotatorPaused(reason)


def response_admit(*, old_status: str | None, status: str, held_lease: bool, submitted: int, leased: int,
                   min_submitted: int) -> bool:
    """Whether a response write may happen, read under the record's lock (the rule of README's
    "Who may answer what"); ConflictError (409) when not, and nothing changes.

    - A submitted answer changes only by an explicit edit (a submit with new values) or a
      discard: a draft after a submit is refused (a late auto-save must not un-submit it).
    - A record is answered by those it was handed to: the caller holds a lease on it (next gave it
      to them), or already has a response to it (their own answer, to finish or edit), or the
      record still has a free slot (submitted + leased below the overlap), which the answer then
      takes. So an answer to any other record id is refused and
      the overlap stays exact (beyond it only when a lease expired while its holder worked).
      A draft takes its slot as a lease (as next would have given); the return value says so
      (True: the caller adds the lease and counts it in leased_count).
    """
    if old_status == Response.Status.SUBMITTED and status == Response.Status.DRAFT:
        raise ConflictError({"status": "this response is already submitted: a draft cannot replace it "
                                       "(send status 'submitted' with the new values to edit it)"})
    if held_lease or old_status is not None:
        return False
    if submitted + leased < min_submitted:
        return status == Response.Status.DRAFT
    raise ConflictError({"record": "this record was not handed to you and has all the answers it needs: "
                                   "ask for the next record (GET /api/v1/datasets/<id>/next/) and answer that one"})


@transaction.atomic
def responses_import(*, dataset: Dataset, items: list[tuple[Record, Any, Any, str]]) -> tuple[int, list[str]]:
    """Store responses brought by an import (an Argilla export's human answers) in bulk: each
    (record, user, values, status) validated like an annotator's answer, one response per
    (record, user) (re-importing replaces it), then the records' submitted counts and completion
    recounted in one statement each. Returns (stored, errors)."""
    questions = dataset_questions(dataset)
    rows: dict[tuple[int, int], Response] = {}
    errors: list[str] = []
    for record, user, values, status in items:
        if status not in Response.Status.values:
            errors.append(f"{record.external_id}: status must be one of {', '.join(Response.Status.values)}")
            continue
        try:
            clean = response_values_validate(questions=questions, values=values, status=status,
                                             allow_ties=dataset.allow_ties)
        except ValidationError as exc:
            errors.append(f"{record.external_id}: {'; '.join(exc.messages)}")
            continue
        rows[(record.pk, user.pk)] = Response(record=record, dataset=dataset, user=user, values=clean, status=status)
    if not rows:
        return 0, errors
    Response.objects.bulk_create(list(rows.values()), batch_size=1000, update_conflicts=True,
                                 unique_fields=["record", "user"], update_fields=["values", "status", "updated_at"])
    record_ids = list({key[0] for key in rows})
    submitted = (Response.objects.filter(record=OuterRef("pk"), status=Response.Status.SUBMITTED)
                 .values("record").annotate(n=models.Count("pk")).values("n"))
    Record.objects.filter(pk__in=record_ids).update(
        submitted_count=models.functions.Coalesce(models.Subquery(submitted), 0))
    Record.objects.filter(pk__in=record_ids).update(completed=record_completed_q(dataset))
    return len(rows), errors


def response_discard_undo(*, user, record: Record) -> Response | None:
    """Undo the user's discard of a record: their response turns back into a draft holding the
    answers it was discarded with (so the record is theirs to finish again, first in their queue).
    None when there is nothing to undo (no response, or not a discarded one)."""
    with transaction.atomic():
        Record.objects.select_for_update().filter(pk=record.pk).values_list("pk").first()  # record first, as every writer
        response = Response.objects.filter(record=record, user=user).first()
        if response is None or response.status != Response.Status.DISCARDED:
            return None
        return response_upsert(user=user, record=record, values=response.values, status=Response.Status.DRAFT,
                               display_order=response.display_order or None).response


def _response_write_orm(*, user, record: Record, clean: dict, status: str, display_order, duration,
                        add_duration: bool):
    dataset = record.dataset
    with transaction.atomic():
        released = 0
        if status != Response.Status.DRAFT:
            released, _ = Lease.objects.filter(record=record, user=user).delete()
        locked = Record.objects.select_for_update().get(pk=record.pk)
        response = Response.objects.filter(record=locked, user=user).first()
        created = response is None
        old_status = None if created else response.status
        held = released > 0 or (status == Response.Status.DRAFT
                                and Lease.objects.filter(record=locked, user=user).exists())
        if not held and old_status is None:
            _slot_taking_allowed(user=user, dataset=dataset)
        record.is_gold, record.extra_wanted = locked.is_gold, locked.extra_wanted
        takes_lease = response_admit(old_status=old_status, status=status, held_lease=held,
                                     submitted=locked.submitted_count, leased=locked.leased_count,
                                     min_submitted=dataset.min_submitted + locked.extra_wanted)
        if takes_lease:
            Lease.objects.create(record=locked, dataset_id=locked.dataset_id, user=user,
                                 expires_at=_lease_expiry(timezone.now()))
            released = -1
        if created:
            response = Response(record=locked, dataset_id=locked.dataset_id, user=user)
        response.values = clean
        response.status = status
        if display_order is not None:
            response.display_order = display_order
        if duration is not None:
            response.duration = (response.duration or 0.0) + duration if add_duration else duration
        response.suggestion_shown = suggestions_shown_for(record=locked, user=user, dataset=dataset)
        response.save()
        delta = int(status == Response.Status.SUBMITTED) - int(old_status == Response.Status.SUBMITTED)
        submitted = locked.submitted_count + delta
        leased = max(0, locked.leased_count - released)
        Record.objects.filter(pk=locked.pk).update(
            submitted_count=submitted, leased_count=leased,
            completed=record_completed(is_gold=locked.is_gold, submitted=submitted,
                                       min_submitted=dataset.min_submitted, extra_wanted=locked.extra_wanted))
    return response, created, submitted, leased, delta


# PostgreSQL fast path of response_upsert: lease delete and record lock, the caller's response
# status read, then the response upsert and the counters in one statement.
# Locks are taken lease first, then record, like every other flow: a submit or discard releases the
# caller's lease (a draft keeps it) in the same statement as the record lock, and the released count
# gates the record scan (a one-time filter), so the delete is done before the record row is locked.
_RESPONSE_LOCK_SQL = """
WITH released AS (
    DELETE FROM annotation_lease WHERE record_id = %(rec)s AND user_id = %(u)s AND %(release)s
    RETURNING 1
)
SELECT submitted_count, leased_count, is_gold, extra_wanted, (SELECT count(*) FROM released)
FROM annotation_record
WHERE id = %(rec)s AND (SELECT count(*) FROM released) >= 0
FOR UPDATE
"""
# Read after the record lock (a statement of its own, so a fresh snapshot): every writer of a
# response holds its record's lock, so the status read here stays true until commit.
# It also says whether the caller holds a lease on the record (what a draft is admitted on: a
# submit or discard deleted its lease already and knows from the rowcount), and, when the dataset
# shows suggestions, whether the record has any (for Response.suggestion_shown).
_RESPONSE_STATUS_SQL = """
SELECT (SELECT status FROM annotation_response WHERE record_id = %(rec)s AND user_id = %(u)s),
       EXISTS (SELECT 1 FROM annotation_lease WHERE record_id = %(rec)s AND user_id = %(u)s),
       CASE WHEN %(sugg)s THEN EXISTS (SELECT 1 FROM annotation_suggestion WHERE record_id = %(rec)s) END
"""
_RESPONSE_WRITE_SQL = """
WITH up AS (
    INSERT INTO annotation_response AS resp
        (record_id, dataset_id, user_id, "values", status, display_order, duration, suggestion_shown,
         created_at, updated_at)
    VALUES (%(rec)s, %(ds)s, %(u)s, %(values)s, %(status)s, %(order)s, %(duration)s, %(shown)s, %(now)s, %(now)s)
    ON CONFLICT (record_id, user_id) DO UPDATE SET
        "values" = EXCLUDED."values",
        status = EXCLUDED.status,
        suggestion_shown = EXCLUDED.suggestion_shown,
        display_order = CASE WHEN %(set_order)s THEN EXCLUDED.display_order ELSE resp.display_order END,
        duration = CASE WHEN %(keep_duration)s THEN resp.duration
                        WHEN %(add_duration)s THEN resp.duration + EXCLUDED.duration
                        ELSE EXCLUDED.duration END,
        updated_at = EXCLUDED.updated_at
    RETURNING resp.id, (resp.xmax = 0), resp.display_order, resp.duration, resp.created_at, resp.updated_at
), counters AS (
    UPDATE annotation_record SET submitted_count = %(submitted)s, leased_count = %(leased)s,
        completed = %(completed)s
    WHERE id = %(rec)s
)
SELECT * FROM up
"""


def _response_write_pg(*, user, record: Record, clean: dict, status: str, display_order, duration,
                       add_duration: bool):
    from psycopg.types.json import Jsonb

    dataset = record.dataset
    min_submitted = dataset.min_submitted
    now = timezone.now()
    # Two round trips: BEGIN, the lock and the status read go together, then the writes and COMMIT
    # (the statements stay apart: the status read's snapshot is taken once the lock is held).
    with hot_transaction() as tx, hot_cursor() as cursor, hot_cursor() as status_cursor:
        with tx.batch():
            cursor.execute(_RESPONSE_LOCK_SQL, {"rec": record.pk, "u": user.pk, "release": status != Response.Status.DRAFT})
            status_cursor.execute(_RESPONSE_STATUS_SQL, {"rec": record.pk, "u": user.pk, "sugg": dataset.show_suggestions})
        row = cursor.fetchone()
        if row is None:
            raise Record.DoesNotExist("Record matching query does not exist.")
        old_submitted, old_leased, is_gold, extra_wanted, released = row
        record.is_gold, record.extra_wanted = is_gold, extra_wanted
        old_status, lease_held, has_suggestions = status_cursor.fetchone()
        if not (released > 0 or lease_held) and old_status is None:
            _slot_taking_allowed(user=user, dataset=dataset)
        takes_lease = response_admit(old_status=old_status, status=status, held_lease=released > 0 or lease_held,
                                     submitted=old_submitted, leased=old_leased, min_submitted=min_submitted + extra_wanted)
        if takes_lease:
            released = -1  # the draft took a slot: leased_count goes up by one
        delta = int(status == Response.Status.SUBMITTED) - int(old_status == Response.Status.SUBMITTED)
        submitted = old_submitted + delta
        leased = max(0, old_leased - released)
        shown = suggestions_shown_for(record=record, user=user, dataset=dataset, has_suggestions=bool(has_suggestions))
        with tx.batch(last=True):
            if takes_lease:
                cursor.execute("INSERT INTO annotation_lease (record_id, dataset_id, user_id, expires_at, created_at) "
                               "VALUES (%s, %s, %s, %s, %s)", [record.pk, record.dataset_id, user.pk, _lease_expiry(now), now])
            status_cursor.execute(_RESPONSE_WRITE_SQL, {
                "rec": record.pk, "ds": record.dataset_id, "u": user.pk, "values": Jsonb(clean), "status": status,
                "order": Jsonb(display_order if display_order is not None else []),
                "set_order": display_order is not None,
                "duration": duration if duration is not None else 0.0,
                "keep_duration": duration is None, "add_duration": bool(add_duration),
                "shown": shown,
                "now": now, "submitted": submitted, "leased": leased,
                "completed": record_completed(is_gold=is_gold, submitted=submitted, min_submitted=min_submitted,
                                              extra_wanted=extra_wanted)})
        response_id, created, stored_order, stored_duration, created_at, updated_at = status_cursor.fetchone()
    if isinstance(stored_order, str):
        stored_order = json.loads(stored_order)
    stored = {"id": response_id, "record_id": record.pk, "dataset_id": record.dataset_id, "user_id": user.pk,
              "values": clean, "status": status, "display_order": stored_order, "duration": stored_duration,
              "suggestion_shown": shown, "created_at": created_at, "updated_at": updated_at}
    response = instance_from_db(Response, list(stored), list(stored.values()))
    relate(response, "record", record)
    relate(response, "user", user)
    return response, bool(created), submitted, leased, delta


# --- suggestions -------------------------------------------------------------------------------

@dataclass
class SuggestionCounts:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)


_SUGGESTION_COLUMNS = ("record_id", "question_id", "value", "score", "agent", "rationale", "raw", "created_at", "updated_at")


def suggestions_upsert(*, dataset: Dataset, items: Iterable[dict]) -> SuggestionCounts:
    """Bulk add judge suggestions. Each item: {record | external_id, question, value, score, agent,
    rationale, raw}. Invalid items are reported by index and the valid ones stored; one suggestion
    per (record, question, agent), re-sending replaces it."""
    items = list(items)
    questions = {q.name: q for q in dataset.questions.all()}
    record_ids = {i.get("record") for i in items if isinstance(i, dict) and i.get("record") is not None}
    external_ids = {str(i["external_id"]) for i in items if isinstance(i, dict) and i.get("external_id") is not None}
    by_pk = dict(Record.objects.filter(IdsIn("pk", [r for r in record_ids if isinstance(r, int)]), dataset=dataset)
                 .values_list("pk", "pk"))
    by_ext = dict(Record.objects.filter(dataset=dataset, external_id__in=external_ids).values_list("external_id", "pk"))
    counts = SuggestionCounts()
    rows: dict[tuple, tuple] = {}  # (record, question, agent) -> (value, score, rationale, raw)
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValidationError({"item": "must be an object"})
            unknown = set(item) - {"record", "external_id", "question", "value", "score", "agent", "rationale", "raw"}
            if unknown:
                raise ValidationError({"item": f"unknown keys: {', '.join(sorted(unknown))}"})
            if item.get("record") is not None:
                record_id = by_pk.get(item["record"])
            else:
                record_id = by_ext.get(str(item.get("external_id")))
            if record_id is None:
                raise ValidationError({"record": "no such record in this dataset"})
            question = questions.get(item.get("question"))
            if question is None:
                raise ValidationError({"question": f"no question {item.get('question')!r} in this dataset"})
            value = question_value_validate(question, item.get("value"), allow_ties=True)
            score = item.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
                raise ValidationError({"score": "must be a number"})
            agent = str(item.get("agent") or "")[:200]
            rows[(record_id, question.pk, agent)] = (value, score, str(item.get("rationale") or ""), item.get("raw"))
        except ValidationError as exc:
            counts.errors.append({"index": index, "errors": exc.message_dict})
    if rows:
        with transaction.atomic():
            keys = list(rows)
            existing = set(Suggestion.objects.filter(IdsIn("record_id", {k[0] for k in keys}))
                           .values_list("record_id", "question_id", "agent"))
            now = timezone.now()
            rows_upsert(model=Suggestion, columns=_SUGGESTION_COLUMNS, conflict=["record_id", "question_id", "agent"],
                        update=["value", "score", "rationale", "raw", "updated_at"],
                        rows=[(record_id, question_id, json_text(value), score, agent, rationale, json_text(raw), now, now)
                              for (record_id, question_id, agent), (value, score, rationale, raw) in rows.items()])
        counts.updated = sum(1 for k in keys if k in existing)
        counts.created = len(keys) - counts.updated
    return counts


def record_priority_set(*, record_ids_to_priority: dict[int, float]) -> None:
    """Set record priorities (next_record_for serves higher first). Priorities take few distinct
    values (they come from judge margins), so this is one UPDATE per distinct value, not per record."""
    by_priority: dict[float, list[int]] = {}
    for pk, priority in record_ids_to_priority.items():
        by_priority.setdefault(float(priority), []).append(pk)
    with transaction.atomic():
        for priority, ids in by_priority.items():
            Record.objects.filter(IdsIn("pk", ids)).update(priority=priority)

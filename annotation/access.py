"""Who may see what: the one set of access selectors that the views, APIs and pages of every app
call (in the spirit of Zulip's access_<thing>_by_id). Nothing else checks a role.

The rules:
- an object of a workspace the user is not a member of does not exist for them (Http404, never 403,
  so its existence is not leaked); so does an unknown or malformed id;
- a member whose role is lower than the operation needs gets PermissionDenied (403);
- staff users act as admins of every workspace.
Both exceptions are Django's, so plain Django views and DRF views answer 404 / 403 alike.

Roles are ordered (ROLES_LOWEST_FIRST): an operation names the lowest role it allows
(`role=ADMIN`, or the default ANNOTATOR for any member) and every higher role passes too.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.http import Http404

from .models import Dataset, Job, Membership, Record, Workspace

ADMIN = Membership.Role.ADMIN
ANNOTATOR = Membership.Role.ANNOTATOR
REVIEWER = Membership.Role.REVIEWER

# Lowest first. A new role goes where it belongs in this order.
ROLES_LOWEST_FIRST: tuple[str, ...] = (ANNOTATOR, REVIEWER, ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES_LOWEST_FIRST)}


# --- the rule ----------------------------------------------------------------------------------

PK_MAX = 2**63 - 1  # the largest id a 64-bit column (SQLite INTEGER, PostgreSQL bigint) holds


def parse_pk(value: Any) -> int:
    """An id from a URL or a query parameter; -1 (which matches nothing) when it is not an integer
    or lies outside what an id column can hold (the database would refuse to compare with it)."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return -1
    return pk if -PK_MAX <= pk <= PK_MAX else -1


def role_at_least(role: str | None, minimum: str) -> bool:
    """Whether a member's role is `minimum` or higher (None, not a member, never is).
    A role this module does not know counts as the lowest."""
    return role is not None and _RANK.get(role, 0) >= _RANK[minimum]


def roles_at_least(minimum: str) -> list[str]:
    """The roles that pass `role_at_least(..., minimum)` (for filtering memberships in SQL)."""
    return [role for role in ROLES_LOWEST_FIRST if _RANK[role] >= _RANK[minimum]]


def role_require(role: str | None, *, minimum: str = ANNOTATOR, what: str) -> None:
    """Apply the rule to the caller's effective role (see effective_role) in an object's workspace:
    Http404 when None (not a member, or no such object), PermissionDenied when lower than `minimum`."""
    if role is None:
        raise Http404(f"No such {what}.")
    if not role_at_least(role, minimum):
        article = "an" if minimum[0] in "aeiou" else "a"
        raise PermissionDenied(f"Only {article} {minimum} of this workspace may do this.")


def effective_role(user, member_role: str | None) -> str | None:
    """The role the rule applies to: None for an anonymous user, admin for staff, else the
    membership role read for the object's workspace (None when not a member)."""
    if user is None or not user.is_authenticated:
        return None
    return ADMIN if user.is_staff else member_role


def membership_role(user, workspace: Workspace | int) -> str | None:
    """The user's effective role in a workspace ("admin" | "reviewer" | "annotator"; admin for staff), else None."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_staff:
        return ADMIN
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return (Membership.objects.filter(user=user, workspace_id=workspace_id)
            .values_list("role", flat=True).first())


# --- one object --------------------------------------------------------------------------------

def _with_role(qs: QuerySet, user, workspace_ref: str) -> QuerySet:
    """Annotate the caller's membership role in the object's workspace as `caller_role`
    (one query for object and access)."""
    if user is None or not user.is_authenticated or user.is_staff:
        return qs
    return qs.annotate(caller_role=Subquery(
        Membership.objects.filter(user=user, workspace_id=OuterRef(workspace_ref)).values("role")[:1]))


def _object_and_role(user, queryset: QuerySet, pk: Any, *, role: str, what: str, workspace_ref: str):
    obj = _with_role(queryset.filter(pk=parse_pk(pk)), user, workspace_ref).first()
    effective = effective_role(user, getattr(obj, "caller_role", None)) if obj is not None else None
    role_require(effective, minimum=role, what=what)
    return obj, effective


def object_for_user(user, queryset: QuerySet, pk: Any, *, role: str = ANNOTATOR, what: str,
                    workspace_ref: str = "workspace_id"):
    """The object of `queryset` with this pk if the user's role in its workspace (reached through
    `workspace_ref`) is at least `role`: else Http404 / PermissionDenied. Also for the objects of
    the other apps (endpoints, judges)."""
    return _object_and_role(user, queryset, pk, role=role, what=what, workspace_ref=workspace_ref)[0]


def workspace_for_user(user, pk: Any, *, role: str = ANNOTATOR) -> Workspace:
    """The workspace if the user's role in it is at least `role`: else Http404 / PermissionDenied."""
    return object_for_user(user, Workspace.objects.all(), pk, role=role, what="workspace", workspace_ref="pk")


def dataset_for_user(user, pk: Any, *, role: str = ANNOTATOR) -> Dataset:
    """The dataset if the user's role in its workspace is at least `role` (any member by default):
    else Http404 (not a member, or no such dataset) / PermissionDenied (role too low)."""
    dataset, effective = _object_and_role(user, Dataset.objects.select_related("workspace"), pk,
                                          role=role, what="dataset", workspace_ref="workspace_id")
    dataset_role_remember(dataset, user, effective)
    return dataset


def record_for_user(user, pk: Any, *, role: str = ANNOTATOR) -> Record:
    """The record if the user's role in its dataset's workspace is at least `role`: else Http404 /
    PermissionDenied. record.dataset and record.dataset.workspace come with it."""
    record, effective = _object_and_role(user, Record.objects.select_related("dataset", "dataset__workspace"), pk,
                                         role=role, what="record", workspace_ref="dataset__workspace_id")
    dataset_role_remember(record.dataset, user, effective)
    return record


def job_for_user(user, pk: Any, *, kind: str | None = None) -> Job:
    """A job if the user is an admin of its workspace (jobs are admin work: imports, exports,
    generation, judging): else Http404 (not a member, no such job, or, with `kind`, a job of
    another kind) / PermissionDenied (a lower role)."""
    qs = Job.objects.select_related("dataset", "workspace")
    if kind is not None:
        qs = qs.filter(kind=kind)
    return object_for_user(user, qs, pk, role=ADMIN, what=f"{kind} job" if kind else "job")


def dataset_role_remember(dataset: Dataset, user, role: str | None) -> None:
    """Keep the caller's effective role on the dataset, so dataset_role needs no query."""
    dataset._caller_role = (user.pk, role)


def dataset_role(dataset: Dataset, user) -> str | None:
    """The user's effective role in the dataset's workspace, without a query when the dataset came
    from dataset_for_user / record_for_user (or the hot path) for this user."""
    cached = getattr(dataset, "_caller_role", None)
    if cached is not None and cached[0] == getattr(user, "pk", None):
        return cached[1]
    return membership_role(user, dataset.workspace_id)


# --- many --------------------------------------------------------------------------------------

def workspaces_for_user(user, *, role: str = ANNOTATOR) -> QuerySet[Workspace]:
    """Workspaces where the user's role is at least `role` (any member by default; all for staff)."""
    if user is None or not user.is_authenticated:
        return Workspace.objects.none()
    if user.is_staff:
        return Workspace.objects.all()
    if role == ROLES_LOWEST_FIRST[0]:
        return Workspace.objects.filter(memberships__user=user).distinct()
    return Workspace.objects.filter(memberships__user=user, memberships__role__in=roles_at_least(role)).distinct()


def admin_workspaces(user, *, refuse: str | None = None) -> QuerySet[Workspace]:
    """The workspaces the user administers (all for staff), by name. With `refuse`, a user who
    administers none gets PermissionDenied(refuse) (pages that are admin work)."""
    workspaces = workspaces_for_user(user, role=ADMIN).order_by("name")
    if refuse is not None and not workspaces.exists():
        raise PermissionDenied(refuse)
    return workspaces


def workspaces_with_role(user) -> QuerySet[Workspace]:
    """workspaces_for_user, each with `role`: the caller's effective role there."""
    qs = workspaces_for_user(user)
    if user is None or not user.is_authenticated:
        return qs
    if user.is_staff:
        return qs.annotate(role=Value(str(ADMIN)))
    return qs.annotate(role=Subquery(
        Membership.objects.filter(user=user, workspace_id=OuterRef("pk")).values("role")[:1]))

"""Raw SQL for the annotation hot path: every annotator's "next record" and "submit" requests.

On PostgreSQL the token, the dataset or record and the caller's membership are each read in one
raw query (the ORM's Python cost was a sixth of a request); elsewhere the ordinary ORM paths run.
The access rules are annotation.access's, applied to the role the query read: a caller who is not
a member (or an unknown id) gets Http404, exactly as access.dataset_for_user / record_for_user.
annotation.apis wires these into its views.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import cache, partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import access
from .models import Dataset, Membership, Record, Suggestion


def hot_cursor():
    """A cursor for the hot path's raw statements of fixed text: on PostgreSQL (preflab.pgbackend)
    its parameters are bound on the server, so the statements are prepared once per connection."""
    return getattr(connection, "hot_cursor", connection.cursor)()


def hot_transaction():
    """A transaction whose statements go to the database in batches (`with tx.batch(): ...`, the
    rows read after the block): on PostgreSQL (preflab.pgbackend) each batch is one round trip,
    BEGIN riding with the first and COMMIT with the one marked `last`; elsewhere
    transaction.atomic, the statements run one by one."""
    factory = getattr(connection, "hot_transaction", None)
    return factory() if factory is not None else _atomic_batches()


class _Batches:
    @contextmanager
    def batch(self, *, last: bool = False):
        yield


@contextmanager
def _atomic_batches():
    with transaction.atomic():
        yield _Batches()


# The columns the hot path leaves unread (the fields stay deferred on the instances it builds): each
# costs the loading of its value and none of these views reads it. A timestamp is loaded by a Python
# loader of Django's, a jsonb column is decoded in Python; the submit's record needs none of its
# content. Reading one of these on such an instance would cost a query of its own (Django's
# deferred loading): tests/annotation/test_hotpath_queries.py counts the round trips of both views.
_UNREAD = {
    "authtoken.token": frozenset({"created"}),
    "auth.user": frozenset({"password", "last_login", "date_joined"}),
    "annotation.dataset": frozenset({"guidelines", "created_at"}),  # (updated_at keys dataset_questions' cache)
    "annotation.record": frozenset({"fields", "metadata", "gold_answer", "created_at", "updated_at"}),
}


@cache
def _plain_init(model) -> bool:
    """Whether Model.__init__ only sets the attributes of a `model` instance read from the database:
    no __init__ or from_db of its own and no pre_init / post_init receivers."""
    return (model.__init__ is Model.__init__ and model.from_db.__func__ is Model.from_db.__func__
            and not pre_init.has_listeners(model) and not post_init.has_listeners(model))


def instance_from_db(model, attnames: list[str], values, db=None):
    """model.from_db(alias, attnames, values) (the fields not in attnames deferred), without the
    cost of Model.__init__ where it would only set the attributes (_plain_init)."""
    db = db or connections[DEFAULT_DB_ALIAS]
    if not _plain_init(model):
        return model.from_db(db.alias, attnames, values)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, db.alias
    instance.__dict__.update(zip(attnames, values))
    return instance


@cache
def _model_layout(model) -> tuple[list[str], list[tuple[int, Any]]]:
    """A model's columns the hot path reads (attnames) and the (position, field) of those with a
    conversion from the database."""
    unread = _UNREAD.get(model._meta.label_lower, frozenset())
    fields = [f for f in model._meta.concrete_fields if f.name not in unread]
    return [f.attname for f in fields], [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]


def _model_from_row(model, values, db=None):
    """A model instance from raw column values (_columns' columns), with the fields' own conversions
    (jsonb text), as Model.from_db would make it; the columns left unread are deferred fields."""
    db = db or connections[DEFAULT_DB_ALIAS]
    values = list(values)
    attnames, converted = _model_layout(model)
    for i, f in converted:
        if values[i] is not None:
            values[i] = f.from_db_value(values[i], None, db)
    return instance_from_db(model, attnames, values, db)


def relate(instance, name: str, related) -> None:
    """`instance.<name> = related` for a related instance read with it (its id already set), as the
    descriptor does it (the reverse side cached too for a one-to-one), without its checks."""
    field = instance._meta.get_field(name)
    field.set_cached_value(instance, related)
    if not field.remote_field.multiple:
        field.remote_field.set_cached_value(related, instance)


@cache
def _columns(model, alias: str) -> str:
    """The columns of `model` the hot path reads (see _UNREAD), for a table aliased `alias`."""
    unread = _UNREAD.get(model._meta.label_lower, frozenset())
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields if f.name not in unread)


def _width(model) -> int:
    return len(_model_layout(model)[0])


# --- authentication ----------------------------------------------------------------------------
#
# A hot-path view names the object its URL points at (`hotpath_object`: per HTTP method, the kind
# "dataset" or "record" and the URL keyword holding its id). The token lookup then reads that
# object and the caller's membership role in the same query, and dataset_for_member /
# record_for_member take them from the view instead of querying again: one round trip for token,
# user, object and role. The access rules are applied afterwards, exactly as without it.

_OBJECT_JOINS = {
    "dataset": (Dataset._meta.db_table + " d ON d.id = %s", None),
    "record": (Record._meta.db_table + " rec ON rec.id = %s", Dataset._meta.db_table + " d ON d.id = rec.dataset_id"),
}


@cache
def _object_sql(kind: str) -> tuple[str, str]:
    """The columns and LEFT JOINs that read a hot-path view's object and the token user's role."""
    first, second = _OBJECT_JOINS[kind]
    cols = (f"{_columns(Record, 'rec')}, " if kind == "record" else "") + _columns(Dataset, "d")
    role = _role_column("d.workspace_id", user_column="t.user_id")
    joins = f" LEFT JOIN {first}" + (f" LEFT JOIN {second}" if second else "")
    return f", {cols}, {role}", joins


def _view_object(view) -> tuple[str, int] | None:
    """(kind, id) of the object a hot-path view's URL names for this request, else None."""
    spec = getattr(view, "hotpath_object", {}).get(getattr(getattr(view, "request", None), "method", None))
    if spec is None:
        return None
    kind, kwarg = spec
    return kind, access.parse_pk(view.kwargs.get(kwarg))


def token_credentials(authenticator: TokenAuthentication, key: str, view=None):
    """TokenAuthentication.authenticate_credentials (same rules and errors) with the token and its
    user read in one raw query on PostgreSQL; the view's object and the user's role in its
    workspace too when the view names one (see above)."""
    if connection.vendor != "postgresql":
        return TokenAuthentication.authenticate_credentials(authenticator, key)
    model = authenticator.get_model()
    user_model = model._meta.get_field("user").related_model
    target = _view_object(view) if view is not None else None
    extra_cols, joins, params = "", "", [key]
    if target is not None:
        extra_cols, joins = _object_sql(target[0])
        params = [target[1], key]
    with hot_cursor() as cursor:
        cursor.execute(f"SELECT {_columns(model, 't')}, {_columns(user_model, 'u')}{extra_cols} "
                       f"FROM {model._meta.db_table} t JOIN {user_model._meta.db_table} u ON u.id = t.user_id"
                       f"{joins} WHERE t.{model._meta.pk.column} = %s", params)
        row = cursor.fetchone()
    if row is None:
        raise exceptions.AuthenticationFailed(gettext_lazy("Invalid token."))
    n = _width(model)
    m = n + _width(user_model)
    db = connections[DEFAULT_DB_ALIAS]
    token, user = _model_from_row(model, row[:n], db), _model_from_row(user_model, row[n:m], db)
    relate(token, "user", user)
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed(gettext_lazy("User inactive or deleted."))
    if target is not None:
        # (kind, id, user id, the object's columns then the role): taken by the *_for_member below
        view._hotpath_prefetched = (target[0], target[1], token.user.pk, list(row[m:]))
    return (token.user, token)


class HotPathAuthMixin:
    """For an APIView: the configured authenticators, with DRF's token lookup done by
    token_credentials (the instances keep their class, so the OpenAPI schema is unchanged).
    `hotpath_object`: {HTTP method: (kind, URL keyword)} of the object read with the token."""

    hotpath_object: dict[str, tuple[str, str]] = {}

    def get_authenticators(self):
        authenticators = super().get_authenticators()
        for authenticator in authenticators:
            if type(authenticator) is TokenAuthentication:
                authenticator.authenticate_credentials = partial(token_credentials, authenticator, view=self)
        return authenticators


def _prefetched(view, kind: str, pk: Any, user) -> list | None:
    """The object row token_credentials read for this view, request and user, if any."""
    got = getattr(view, "_hotpath_prefetched", None) if view is not None else None
    if got is None or got[0] != kind or got[1] != access.parse_pk(pk) or got[2] != user.pk:
        return None
    return got[3]


# --- access ------------------------------------------------------------------------------------

def _member_fetch(user, sql: str, pk: Any, what: str, row: list | None = None) -> tuple[list, str | None]:
    """Run a raw object query whose last column is the caller's membership role (or take the `row`
    the token query read: all NULL when there is no such object) and apply annotation.access's rule
    for any member (404: not a member / no such object)."""
    if row is None:
        with hot_cursor() as cursor:
            cursor.execute(sql, [user.pk, access.parse_pk(pk)])
            row = cursor.fetchone()
    elif row[0] is None:  # (the object's id column: the LEFT JOIN found nothing)
        row = None
    role = access.effective_role(user, row[-1]) if row is not None else None
    access.role_require(role, minimum=access.ANNOTATOR, what=what)
    return list(row[:-1]), role


def _role_column(workspace_column: str, *, user_column: str = "%s") -> str:
    """The caller's membership role in the workspace (NULL when not a member), as a column."""
    return (f"(SELECT m.role FROM {Membership._meta.db_table} m "
            f"WHERE m.user_id = {user_column} AND m.workspace_id = {workspace_column} LIMIT 1)")


def dataset_for_member(user, pk: Any, *, view=None) -> Dataset:
    """access.dataset_for_user (any member), in one raw query on PostgreSQL (none when the token
    query of `view` read it): the same rules. The columns of _UNREAD stay deferred."""
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return access.dataset_for_user(user, pk)
    sql = (f"SELECT {_columns(Dataset, 'd')}, {_role_column('d.workspace_id')} "
           f"FROM {Dataset._meta.db_table} d WHERE d.id = %s")
    values, role = _member_fetch(user, sql, pk, "dataset", _prefetched(view, "dataset", pk, user))
    dataset = _model_from_row(Dataset, values)
    access.dataset_role_remember(dataset, user, role)
    return dataset


def record_for_member(user, pk: Any, *, view=None) -> Record:
    """access.record_for_user (any member), in one raw query on PostgreSQL (none when the token
    query of `view` read it), record.dataset included: the same rules. What a submit needs: the
    record's content (fields, metadata, gold answer) and the columns of _UNREAD stay deferred."""
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return access.record_for_user(user, pk)
    sql = (f"SELECT {_columns(Record, 'rec')}, {_columns(Dataset, 'd')}, {_role_column('d.workspace_id')} "
           f"FROM {Record._meta.db_table} rec JOIN {Dataset._meta.db_table} d ON d.id = rec.dataset_id "
           f"WHERE rec.id = %s")
    values, role = _member_fetch(user, sql, pk, "record", _prefetched(view, "record", pk, user))
    n = _width(Record)
    record = _model_from_row(Record, values[:n])
    relate(record, "dataset", _model_from_row(Dataset, values[n:]))
    access.dataset_role_remember(record.dataset, user, role)
    return record


# --- what the next-record answer needs ---------------------------------------------------------

def record_has_suggestions(record: Record) -> bool:
    """Whether the record has suggestions: as next_record_for read it with the record on PostgreSQL,
    else a cheap probe (most records handed out have none)."""
    known = getattr(record, "_preflab_has_suggestions", None)
    if known is not None:
        return bool(known)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {Suggestion._meta.db_table} WHERE record_id = %s LIMIT 1", [record.pk])
        return cursor.fetchone() is not None

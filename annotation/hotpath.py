"""Raw SQL for the annotation hot path: every annotator's "next record" and "submit" requests.

On PostgreSQL the token, the dataset or record and the caller's membership are each read in one
raw query (the ORM's Python cost was a sixth of a request); elsewhere the ordinary ORM paths run.
The access rules are annotation.access's, applied to the role the query read: a caller who is not
a member (or an unknown id) gets Http404, exactly as access.dataset_for_user / record_for_user.
annotation.apis wires these into its views.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from django.db import connection
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import access
from .models import Dataset, Membership, Record, Suggestion


def _model_from_row(model, values):
    """A model instance from raw column values, with the fields' own conversions (jsonb text)."""
    values = list(values)
    for i, f in enumerate(model._meta.concrete_fields):
        if values[i] is not None and hasattr(f, "from_db_value"):
            values[i] = f.from_db_value(values[i], None, connection)
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], values)


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


# --- authentication ----------------------------------------------------------------------------

def token_credentials(authenticator: TokenAuthentication, key: str):
    """TokenAuthentication.authenticate_credentials (same rules and errors) with the token and its
    user read in one raw query on PostgreSQL."""
    if connection.vendor != "postgresql":
        return TokenAuthentication.authenticate_credentials(authenticator, key)
    model = authenticator.get_model()
    user_model = model._meta.get_field("user").related_model
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_columns(model, 't')}, {_columns(user_model, 'u')} "
                       f"FROM {model._meta.db_table} t JOIN {user_model._meta.db_table} u ON u.id = t.user_id "
                       f"WHERE t.{model._meta.pk.column} = %s", [key])
        row = cursor.fetchone()
    if row is None:
        raise exceptions.AuthenticationFailed(gettext_lazy("Invalid token."))
    n = len(model._meta.concrete_fields)
    token = _model_from_row(model, row[:n])
    token.user = _model_from_row(user_model, row[n:])
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed(gettext_lazy("User inactive or deleted."))
    return (token.user, token)


class HotPathAuthMixin:
    """For an APIView: the configured authenticators, with DRF's token lookup done by
    token_credentials (the instances keep their class, so the OpenAPI schema is unchanged)."""

    def get_authenticators(self):
        authenticators = super().get_authenticators()
        for authenticator in authenticators:
            if type(authenticator) is TokenAuthentication:
                authenticator.authenticate_credentials = partial(token_credentials, authenticator)
        return authenticators


# --- access ------------------------------------------------------------------------------------

def _member_fetch(user, sql: str, pk: Any, what: str) -> tuple[list, str | None]:
    """Run a raw object query whose last column is the caller's membership role and apply
    annotation.access's rule for any member (404: not a member / no such object)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.pk, access.parse_pk(pk)])
        row = cursor.fetchone()
    role = access.effective_role(user, row[-1]) if row is not None else None
    access.role_require(role, minimum=access.ANNOTATOR, what=what)
    return list(row[:-1]), role


def _role_column(workspace_column: str) -> str:
    return (f"(SELECT m.role FROM {Membership._meta.db_table} m "
            f"WHERE m.user_id = %s AND m.workspace_id = {workspace_column} LIMIT 1)")


def dataset_for_member(user, pk: Any) -> Dataset:
    """access.dataset_for_user (any member), in one raw query on PostgreSQL: the same rules."""
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return access.dataset_for_user(user, pk)
    sql = (f"SELECT {_columns(Dataset, 'd')}, {_role_column('d.workspace_id')} "
           f"FROM {Dataset._meta.db_table} d WHERE d.id = %s")
    values, role = _member_fetch(user, sql, pk, "dataset")
    dataset = _model_from_row(Dataset, values)
    access.dataset_role_remember(dataset, user, role)
    return dataset


def record_for_member(user, pk: Any) -> Record:
    """access.record_for_user (any member), in one raw query on PostgreSQL, record.dataset
    included: the same rules."""
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return access.record_for_user(user, pk)
    sql = (f"SELECT {_columns(Record, 'rec')}, {_columns(Dataset, 'd')}, {_role_column('d.workspace_id')} "
           f"FROM {Record._meta.db_table} rec JOIN {Dataset._meta.db_table} d ON d.id = rec.dataset_id "
           f"WHERE rec.id = %s")
    values, role = _member_fetch(user, sql, pk, "record")
    n = len(Record._meta.concrete_fields)
    record = _model_from_row(Record, values[:n])
    record.dataset = _model_from_row(Dataset, values[n:])
    access.dataset_role_remember(record.dataset, user, role)
    return record


# --- what the next-record answer needs ---------------------------------------------------------

def record_has_suggestions(record_id: int) -> bool:
    """A cheap probe before the suggestions query (most records handed out have none)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {Suggestion._meta.db_table} WHERE record_id = %s LIMIT 1", [record_id])
        return cursor.fetchone() is not None

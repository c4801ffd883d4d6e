"""Helpers shared by the generation management commands."""
from __future__ import annotations

import orjson
from django.core.management.base import CommandError

from annotation.models import Workspace


def workspace_arg(value: str | None) -> Workspace:
    if value in (None, ""):
        workspaces = list(Workspace.objects.all()[:2])
        if len(workspaces) == 1:
            return workspaces[0]
        raise CommandError("give --workspace (name or id)")
    ws = Workspace.objects.filter(name=value).first()
    if ws is None and str(value).isdigit():
        ws = Workspace.objects.filter(pk=int(value)).first()
    if ws is None:
        raise CommandError(f"no workspace {value!r}")
    return ws


def param_value(text: str):
    """key=value: the value is read as JSON when it parses (numbers, lists, booleans), else a string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def params_arg(items: list[str] | None, option: str) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CommandError(f"{option} {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = param_value(value.strip())
    return out

"""Judges of a workspace: validated create, update and delete."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Job, Workspace
from annotation.validation import workspace_name_validate
from generation.models import Endpoint

from ..models import Judge
from ..selectors import JOB_KIND

log = logging.getLogger(__name__)

JUDGE_FIELDS = ("name", "method", "aspect", "overall_mode", "template", "params", "max_parse_retries",
                "use_structured_output")


# --- judges ------------------------------------------------------------------------------------

def _judge_values_validate(values: dict, *, workspace: Workspace, instance: Judge | None = None) -> dict:
    clean = dict(values)
    if "name" in clean:
        workspace_name_validate(clean["name"], taken=Judge.objects.filter(workspace=workspace), instance=instance,
                                what="a judge")
    for key, choices in (("method", Judge.Method), ("aspect", Judge.Aspect), ("overall_mode", Judge.OverallMode)):
        if key in clean and clean[key] not in choices.values:
            raise ValidationError({key: f"must be one of {', '.join(choices.values)}"})
    if "params" in clean:
        params = clean["params"]
        if params is None:
            params = clean["params"] = {}
        if not isinstance(params, dict):
            raise ValidationError({"params": "must be an object (temperature, max_tokens, seed, ...)"})
        allowed = {"temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "presence_penalty",
                   "frequency_penalty"}
        unknown = set(params) - allowed
        if unknown:
            raise ValidationError({"params": f"unknown parameters: {', '.join(sorted(unknown))}; "
                                             f"allowed: {', '.join(sorted(allowed))}"})
        for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            if k in params and (isinstance(params[k], bool) or not isinstance(params[k], (int, float))):
                raise ValidationError({"params": f"{k} must be a number"})
        for k in ("top_k", "max_tokens", "seed"):
            if k in params and (isinstance(params[k], bool) or not isinstance(params[k], int)):
                raise ValidationError({"params": f"{k} must be an integer"})
    if "max_parse_retries" in clean:
        v = clean["max_parse_retries"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10:
            raise ValidationError({"max_parse_retries": "an integer from 0 to 10"})
    if "use_structured_output" in clean and not isinstance(clean["use_structured_output"], bool):
        raise ValidationError({"use_structured_output": "must be true or false"})
    if "template" in clean:
        if clean["template"] is None:
            clean["template"] = ""
        if not isinstance(clean["template"], str) or len(clean["template"]) > 50_000:
            raise ValidationError({"template": "a string of at most 50,000 characters"})
    return clean


@transaction.atomic
def judge_create(*, workspace: Workspace, name: str, endpoint: Endpoint, method: str = Judge.Method.ULTRAFEEDBACK,
                 aspect: str = Judge.Aspect.OVERALL, overall_mode: str = Judge.OverallMode.RUBRIC,
                 template: str = "", params: dict | None = None, max_parse_retries: int = 2,
                 use_structured_output: bool = True) -> Judge:
    if endpoint.workspace_id != workspace.pk:
        raise ValidationError({"endpoint": "no such endpoint in this workspace"})
    clean = _judge_values_validate(
        {"name": name, "method": method, "aspect": aspect, "overall_mode": overall_mode, "template": template,
         "params": params or {}, "max_parse_retries": max_parse_retries,
         "use_structured_output": use_structured_output}, workspace=workspace)
    return Judge.objects.create(workspace=workspace, endpoint=endpoint, **clean)


@transaction.atomic
def judge_update(*, judge: Judge, endpoint: Endpoint | None = None, **changes: Any) -> Judge:
    unknown = set(changes) - set(JUDGE_FIELDS)
    if unknown:
        raise ValidationError({"judge": f"cannot change: {', '.join(sorted(unknown))}"})
    clean = _judge_values_validate(changes, workspace=judge.workspace, instance=judge)
    if endpoint is not None:
        if endpoint.workspace_id != judge.workspace_id:
            raise ValidationError({"endpoint": "no such endpoint in this workspace"})
        judge.endpoint = endpoint
    for k, v in clean.items():
        setattr(judge, k, v)
    judge.save()
    return judge


def judge_delete(*, judge: Judge) -> None:
    if Job.objects.filter(kind=JOB_KIND, params__judge_id=judge.pk, status__in=Job.ACTIVE).exists():
        raise ValidationError({"judge": "a job of this judge is running; cancel it first"})
    judge.delete()

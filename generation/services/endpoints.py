"""Endpoints of a workspace's LLM pool: validated create, update and delete."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError

from annotation.models import Job, Workspace
from annotation.validation import workspace_name_validate

from ..models import Endpoint
from ..selectors import JOB_KIND

PARAM_KEYS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "presence_penalty",
              "frequency_penalty", "repetition_penalty", "min_p", "response_format", "engine")


# --- endpoints ---------------------------------------------------------------------------------

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
KEY_LIKE_RE = re.compile(r"^(sk-|sk_|hf_|gsk_|xai-|pk-|AIza|ghp_|Bearer\s)|^[A-Za-z0-9+/=_-]{32,}$")
ENDPOINT_FIELDS = ("name", "backend", "base_url", "model", "api_key_env", "max_concurrency", "params",
                   "system_prompt", "queue", "timeout", "max_retries", "supports_json_schema")


def endpoint_values_validate(values: dict, *, workspace: Workspace, instance: Endpoint | None = None) -> dict:
    unknown = set(values) - set(ENDPOINT_FIELDS)
    if unknown:
        if unknown & {"api_key", "key", "token", "secret"}:
            raise ValidationError({sorted(unknown)[0]: "API keys are never stored: put the key in an environment "
                                                        "variable of the worker and give its NAME in api_key_env"})
        raise ValidationError({sorted(unknown)[0]: "unknown field"})
    out = dict(values)
    workspace_name_validate(out.get("name", instance.name if instance else None),
                            taken=Endpoint.objects.filter(workspace=workspace), instance=instance, what="an endpoint")
    backend = out.get("backend", instance.backend if instance else Endpoint.Backend.OPENAI_COMPATIBLE)
    if backend not in Endpoint.Backend.values:
        raise ValidationError({"backend": f"must be one of {', '.join(Endpoint.Backend.values)}"})
    model = out.get("model", instance.model if instance else "")
    if not model or len(str(model)) > 300:
        raise ValidationError({"model": "required, at most 300 characters"})
    base_url = out.get("base_url", instance.base_url if instance else "")
    if backend == Endpoint.Backend.OPENAI_COMPATIBLE:
        if not base_url or not re.match(r"^https?://[^\s/]+", str(base_url)):
            raise ValidationError({"base_url": "an http(s) URL of the OpenAI-compatible API, e.g. http://vllm:8000/v1"})
        if "@" in str(base_url).split("//", 1)[-1].split("/", 1)[0]:
            raise ValidationError({"base_url": "credentials in the URL are not stored; use api_key_env"})
    if "api_key_env" in out:
        env_name = (out["api_key_env"] or "").strip()
        looks_like_key = (KEY_LIKE_RE.match(env_name) and not env_name.isupper()) or (
            len(env_name) >= 20 and "_" not in env_name and any(c.isdigit() for c in env_name))
        if env_name and (looks_like_key or not ENV_NAME_RE.fullmatch(env_name)):
            raise ValidationError({"api_key_env": "the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                                                  "never the key itself; keys are not stored"})
        out["api_key_env"] = env_name
    if "max_concurrency" in out:
        v = out["max_concurrency"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
            raise ValidationError({"max_concurrency": "an integer from 1 to 4096"})
    if "max_retries" in out:
        v = out["max_retries"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 20:
            raise ValidationError({"max_retries": "an integer from 0 to 20"})
    if "timeout" in out:
        v = out["timeout"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 3600:
            raise ValidationError({"timeout": "seconds, more than 0 and at most 3600"})
        out["timeout"] = float(v)
    if "params" in out:
        out["params"] = generation_params_validate(out["params"] or {}, where="params")
    if "queue" in out and out["queue"] and not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", out["queue"]):
        raise ValidationError({"queue": "a Celery queue name: letters, digits, '_', '.', ':' and '-'"})
    return out


def generation_params_validate(params: Any, *, where: str = "params") -> dict:
    if not isinstance(params, dict):
        raise ValidationError({where: "an object of generation parameters"})
    for key, value in params.items():
        if key in ("api_key", "key", "token"):
            raise ValidationError({f"{where}.{key}": "API keys are never stored; use api_key_env"})
        if key in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "min_p"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError({f"{where}.{key}": "must be a number"})
            if key == "temperature" and not 0 <= value <= 5:
                raise ValidationError({f"{where}.{key}": "from 0 to 5"})
            if key == "top_p" and not 0 < value <= 1:
                raise ValidationError({f"{where}.{key}": "more than 0 and at most 1"})
        elif key in ("top_k", "max_tokens", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError({f"{where}.{key}": "must be an integer"})
            if key == "max_tokens" and value < 1:
                raise ValidationError({f"{where}.{key}": "at least 1"})
        elif key == "stop":
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value))):
                raise ValidationError({f"{where}.{key}": "a string or a list of strings"})
        elif key in ("response_format", "engine"):
            if not isinstance(value, dict):
                raise ValidationError({f"{where}.{key}": "must be an object"})
        elif key not in PARAM_KEYS and not re.match(r"^[a-z_][a-z0-9_]{0,63}$", key):
            raise ValidationError({f"{where}.{key}": "not a generation parameter name"})
    return dict(params)


@transaction.atomic
def endpoint_create(*, workspace: Workspace, **values: Any) -> Endpoint:
    clean = endpoint_values_validate(values, workspace=workspace)
    return Endpoint.objects.create(workspace=workspace, **clean)


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, **changes: Any) -> Endpoint:
    clean = endpoint_values_validate(changes, workspace=endpoint.workspace, instance=endpoint)
    for key, value in clean.items():
        setattr(endpoint, key, value)
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete an endpoint unless a running generation job or a judge still uses it (400 naming them)."""
    running = [pk for pk, params in Job.objects.filter(kind=JOB_KIND, workspace=endpoint.workspace_id,
                                                       status__in=Job.ACTIVE).values_list("pk", "params")
               if endpoint.name in (params or {}).get("endpoints", [])]
    if running:
        raise ValidationError({"endpoint": f"used by running generation job(s) {', '.join(map(str, running))}; "
                                           "cancel them first"})
    try:
        with transaction.atomic():
            endpoint.delete()
    except (ProtectedError, RestrictedError) as exc:
        users = sorted({str(o) for o in exc.protected_objects} if isinstance(exc, ProtectedError)
                       else {str(o) for o in exc.restricted_objects})
        raise ValidationError({"endpoint": f"still used by {', '.join(users[:10])}; delete or change those first"})

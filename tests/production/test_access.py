"""No data crosses workspaces: a walk over EVERY URL pattern of the project (API and htmx pages).

The URL patterns are discovered from Django's resolver (admin/, static files and the schema/docs
views excepted), so endpoints added later are covered without editing this file. Path parameters
are filled with the ids of objects of workspace A (a rich world: dataset, records, responses,
suggestions, jobs, endpoint, judge and one object of every other model the apps define). Each URL is
then called with every method its view accepts (pages also with `HX-Request: true`) by:

1. an admin of another workspace B      -> 404 (or 403/405) for A's objects; lists never show A's data;
2. an annotator of A on admin-only URLs  -> 403/404 (or 405);
3. no credentials                        -> 401/403 for the API, a redirect to the login page for pages.

For every call: never a 500, never a byte of A's data (every text of A carries a marker), and the rows
of workspace A are unchanged afterwards (a snapshot of every model of the apps is compared).
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.jobs import job_kinds
from annotation.models import Dataset, Job, JobChunk, JobError, Lease, Membership, Record, Response, Suggestion, Workspace
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory

MARK = "zq9Asecret"  # every text of workspace A carries it; it must never reach another user
APPS = ("annotation", "generation", "judging")
METHODS = ("get", "post", "put", "patch", "delete")

# Admin-only operations, by URL name (regex). Writes are admin-only unless ANNOTATOR_WRITES matches.
ADMIN_ONLY_GET = re.compile(r"dashboard|members?\b|member-|export|triplet|import|jobs?\b|job-|endpoint|"
                            r"dataset-create|generation|judge|judging|simulat|cleaning|best-of-n")
ANNOTATOR_WRITES = re.compile(r"respond|draft|undo-discard|responses|next|logout|account")  # one's own token, one's own discard


# --- discovery ----------------------------------------------------------------------------------

@dataclass
class Route:
    route: str            # e.g. "api/v1/datasets/<int:dataset_id>/"
    name: str             # namespaced URL name ("" when unnamed)
    params: dict[str, str]  # parameter name -> converter name
    view: Any
    methods: list[str] = field(default_factory=list)

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")


def _skip(route: str, callback) -> bool:
    if route.startswith(("admin/", "static/", "media/")) or "__debug__" in route:
        return True
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    module = getattr(cls or callback, "__module__", "") or ""
    return module.startswith(("drf_spectacular", "django.views.static", "django.contrib.staticfiles"))


def _methods(callback, is_api: bool) -> list[str]:
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:  # function view: try the usual verbs; 405 is an acceptable answer
        return ["get", "post"]
    allowed = [m for m in METHODS if m in cls.http_method_names and hasattr(cls, m)]
    if not is_api and "put" in allowed and "post" in allowed:
        allowed.remove("put")  # Django's form views alias PUT to POST
    return allowed


def discover_routes() -> list[Route]:
    found: list[Route] = []

    def walk(patterns, prefix: str, namespace: str):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if _skip(route, p.callback):
                    continue
                params = {name: conv or "str" for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", route)}
                found.append(Route(route=route, name=f"{namespace}{p.name}" if p.name else "", params=params,
                                   view=p.callback, methods=_methods(p.callback, route.startswith("api/"))))

    walk(get_resolver().url_patterns, "", "")
    return found


ROUTES = discover_routes()


# --- the world: workspace A (rich) and workspace B ---------------------------------------------------

class World:
    def __init__(self):
        self.ws_a = Workspace.objects.create(name=f"ws-A-{MARK}")
        self.ws_b = Workspace.objects.create(name="ws-B-plain")
        self.admin_a = UserFactory(username="admin-a", first_name=MARK)
        self.annotator_a = UserFactory(username="anna-a")
        self.other_annotator_a = UserFactory(username="otto-a")
        self.admin_b = UserFactory(username="bob-b")
        for user, ws, role in ((self.admin_a, self.ws_a, "admin"), (self.annotator_a, self.ws_a, "annotator"),
                               (self.other_annotator_a, self.ws_a, "annotator"), (self.admin_b, self.ws_b, "admin")):
            MembershipFactory(user=user, workspace=ws, role=role)
        self.dataset = DatasetFactory(workspace=self.ws_a, name=f"ds-A-{MARK}", guidelines=f"Guide {MARK}",
                                      min_submitted=2, created_by=self.admin_a)
        self.dataset_b = DatasetFactory(workspace=self.ws_b, name="ds-B-plain", created_by=self.admin_b)
        RecordFactory(dataset=self.dataset_b, fields={"prompt": "b", "response-1": "b1", "response-2": "b2"})
        self.records = [
            RecordFactory(dataset=self.dataset, external_id=f"{MARK}-{i}", metadata={"source": MARK},
                          fields={"prompt": f"Prompt {i} {MARK}", "response-1": f"One {MARK}",
                                  "response-2": f"Two {MARK}"})
            for i in range(4)
        ]
        self.record = self.records[0]
        self.question = self.dataset.questions.get(name="ranking")
        ranking = [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]
        self.response = Response.objects.create(record=self.record, dataset=self.dataset, user=self.annotator_a,
                                                values={"ranking": ranking}, status="submitted",
                                                display_order=["response-1", "response-2"], duration=3.0)
        Response.objects.create(record=self.records[1], dataset=self.dataset, user=self.other_annotator_a,
                                values={"ranking": ranking}, status="draft")
        Record.objects.filter(pk=self.record.pk).update(submitted_count=1)
        self.suggestion = Suggestion.objects.create(record=self.record, question=self.question, value=ranking,
                                                    score=0.7, agent=f"judge-{MARK}", rationale=f"Because {MARK}")
        Lease.objects.create(record=self.records[2], dataset=self.dataset, user=self.annotator_a,
                             expires_at=timezone.now() + timezone.timedelta(minutes=30))
        self.job = Job.objects.create(kind="export", workspace=self.ws_a, dataset=self.dataset,
                                      created_by=self.admin_a, name=f"job-{MARK}", status="succeeded",
                                      total=4, done=4, params={"note": MARK}, result={"note": MARK})
        JobChunk.objects.create(job=self.job, index=0, status="done", spec={"note": MARK}, done=4)
        JobError.objects.create(job=self.job, item="line 3", error=f"bad {MARK}", raw=MARK)
        # an export with its output file, and one finished job of every other registered kind
        self.out_dir = Path(tempfile.mkdtemp(prefix="preflab-test-access-"))
        output = self.out_dir / "triplets.jsonl"
        output.write_text(json.dumps({"prompt": MARK, "chosen": MARK, "rejected": MARK}) + "\n")
        self.job.output_file = str(output)
        self.job.save(update_fields=["output_file"])
        self.jobs = {"export": self.job}
        self.objects: dict[type, models.Model] = {
            Workspace: self.ws_a, Dataset: self.dataset, Record: self.record, Response: self.response,
            Suggestion: self.suggestion, Job: self.job, Membership: Membership.objects.get(user=self.annotator_a),
        }
        if apps.is_installed("generation"):
            # an LLM endpoint that answers nothing (a closed local port): calls fail fast, never leave the machine
            Endpoint = apps.get_model("generation", "Endpoint")
            self.objects[Endpoint] = Endpoint.objects.create(
                workspace=self.ws_a, name=f"ep-{MARK}", model=f"model-{MARK}", base_url="http://127.0.0.1:9/v1",
                timeout=2.0, max_retries=0, max_concurrency=2)
        self.unbuilt: list[str] = []
        self._build_every_other_model()
        self._jobs_through_their_services()
        for kind in job_kinds():  # a bare finished job of every other registered kind
            if kind not in self.jobs:
                self.jobs[kind] = Job.objects.create(
                    kind=kind, workspace=self.ws_a, dataset=self.dataset, created_by=self.admin_a,
                    name=f"{kind}-{MARK}", status="succeeded", total=1, done=1, params={"note": MARK})
        self.tokens = {u.pk: Token.objects.get_or_create(user=u)[0].key
                       for u in (self.admin_a, self.annotator_a, self.admin_b)}
        self.owner = self._owners()

    # One instance of every model of the apps, linked to workspace A, with the marker in its texts.
    def _build_every_other_model(self):
        for model in self._app_models():
            if model in self.objects:
                continue
            if model.objects.filter(**self._a_filter(model)).exists():
                self.objects[model] = model.objects.filter(**self._a_filter(model)).first()
                continue
            try:
                self._build(model, depth=0)
            except Exception as exc:  # noqa: BLE001 - reported, the walk goes on with what exists
                self.unbuilt.append(f"{model._meta.label}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def _jobs_through_their_services(self):
        """Generation/judge/simulation jobs as their own services create them (realistic params);
        the bare jobs above stay where a service is missing or refuses."""
        by_name = {m._meta.model_name: obj for m, obj in self.objects.items()}
        makers = {
            "generation": ("generation.services", "generation_job_create", lambda: dict(
                workspace=self.ws_a, dataset_name=f"gen-{MARK}", endpoints=[by_name["endpoint"]], n=2,
                strategy="samples", prompts_source={"dataset": self.dataset}, start=False)),
            "judge": ("judging.services", "judge_job_create", lambda: dict(
                workspace=self.ws_a, dataset=self.dataset, judge=by_name["judge"], start=False)),
            "simulation": ("judging.evaluation.simulation", "simulation_job_create", lambda: dict(
                dataset=self.dataset, annotators=[by_name["simulatedannotator"]], start=False)),
        }
        for kind, (module, func, kwargs) in makers.items():
            try:
                import importlib

                with transaction.atomic():
                    job = getattr(importlib.import_module(module), func)(**kwargs())
                Job.objects.filter(pk=job.pk).update(name=f"{kind}-{MARK}", created_by=self.admin_a)
                self.jobs[kind] = job
            except Exception as exc:  # noqa: BLE001 - keep the bare job of that kind
                self.job_notes = getattr(self, "job_notes", []) + [f"{kind}: {type(exc).__name__}: {exc}"]

    @staticmethod
    def _app_models():
        return [m for app in APPS if apps.is_installed(app) for m in apps.get_app_config(app).get_models()
                if not m._meta.abstract and not m._meta.proxy]

    def _a_filter(self, model) -> dict:
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model is Workspace:
                return {f.name: self.ws_a}
            if f.is_relation and f.related_model is Dataset:
                return {f.name: self.dataset}
        return {"pk__in": []}

    def _build(self, model, depth: int):
        if model in self.objects:
            return self.objects[model]
        if depth > 5:
            raise RuntimeError("relation chain too deep")
        values: dict[str, Any] = {}
        for f in model._meta.concrete_fields:
            if f.primary_key or getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                continue
            if f.is_relation:
                target = f.related_model
                if target is get_user_model():
                    values[f.name] = (UserFactory(username=f"sim-{uuid.uuid4().hex[:8]}") if f.one_to_one
                                      else self.admin_a)
                elif target in self.objects:
                    values[f.name] = self.objects[target]
                elif f.null:
                    continue
                else:
                    values[f.name] = self._build(target, depth + 1)
                continue
            if f.has_default() or f.null:
                continue
            values[f.name] = self._value_for(model, f)
        with transaction.atomic():
            obj = model.objects.create(**values)
        self.objects[model] = obj
        return obj

    @staticmethod
    def _value_for(model, f):
        if f.choices:
            return f.choices[0][0]
        if isinstance(f, models.SlugField):
            return f"a-{model._meta.model_name}"[: f.max_length]
        if isinstance(f, (models.CharField, models.TextField)):
            text = f"{model._meta.model_name}-{MARK}"
            return text[: f.max_length] if f.max_length else text
        if isinstance(f, models.JSONField):
            return {"note": MARK}
        if isinstance(f, models.BooleanField):
            return False
        if isinstance(f, (models.IntegerField, models.FloatField, models.DecimalField)):
            return 1
        if isinstance(f, models.DateTimeField):
            return timezone.now()
        if isinstance(f, models.DateField):
            return timezone.now().date()
        if isinstance(f, models.UUIDField):
            return uuid.uuid4()
        raise RuntimeError(f"no value for {f.name} ({type(f).__name__})")

    # Which workspace each row belongs to (following foreign keys), for the change detector.
    def _owners(self) -> dict[tuple[str, Any], Any]:
        owner = {}
        for model in self._app_models():
            for obj in model.objects.all():
                owner[(model._meta.label, obj.pk)] = self.workspace_of(obj)
        return owner

    def workspace_of(self, obj, depth: int = 0):
        if isinstance(obj, Workspace):
            return obj.pk
        if depth > 4:
            return None
        for f in obj._meta.concrete_fields:
            if f.is_relation and f.related_model is Workspace and getattr(obj, f.attname) is not None:
                return getattr(obj, f.attname)
        for f in obj._meta.concrete_fields:
            if f.is_relation and f.related_model._meta.app_label in APPS and getattr(obj, f.attname) is not None:
                found = self.workspace_of(getattr(obj, f.name), depth + 1)
                if found is not None:
                    return found
        return None

    def snapshot(self) -> dict[tuple[str, Any], tuple]:
        snap = {}
        for model in self._app_models():
            names = [f.attname for f in model._meta.concrete_fields]
            for row in model.objects.values_list(*names):
                snap[(model._meta.label, row[0] if names[0] == model._meta.pk.attname else row)] = row
        return snap

    def changes_in_a(self, before: dict, after: dict, *, any_workspace: bool = False) -> list[str]:
        changed = []
        for key in set(before) | set(after):
            if before.get(key) == after.get(key):
                continue
            label, pk = key
            ws = self.owner.get(key)
            if ws is None and key in after:
                model = apps.get_model(label)
                obj = model.objects.filter(pk=pk).first()
                ws = self.workspace_of(obj) if obj is not None else None
            if any_workspace or ws == self.ws_a.pk:
                what = "created" if key not in before else "deleted" if key not in after else "changed"
                changed.append(f"{label} #{pk} {what}")
        return sorted(changed)

    # --- URL parameters -------------------------------------------------------------------------
    def param_value(self, route: Route, name: str) -> Any:
        if name in ("username",):
            return self.annotator_a.username
        if name in ("user_id", "member_id", "annotator_user_id"):
            return self.annotator_a.pk
        if name in ("format",):
            return "jsonl"
        if name == "action":  # an invitation's answer
            return "accept"
        if name in ("kind", "job_kind"):
            return self.job.kind
        if name == "job_id":  # the job of the kind the URL is about
            text = f"{route.route} {route.name}"
            for kind in sorted(self.jobs, key=len, reverse=True):
                if kind[:4] in text:
                    return self.jobs[kind].pk
            return self.job.pk
        if name in ("external_id",):
            return self.record.external_id
        base = re.sub(r"_(id|pk)$", "", name).replace("_", "")
        if base in ("pk", "id"):
            base = _model_hint(route)
        by_name = {m._meta.model_name: obj for m, obj in self.objects.items()}
        if base in by_name:
            return by_name[base].pk
        ends = [obj for n, obj in by_name.items() if n.endswith(base)]
        if len(ends) == 1:
            return ends[0].pk
        raise LookupError(f"cannot fill URL parameter <{name}> of {route.route!r} (name {route.name!r}): "
                          f"teach World.param_value which object of workspace A it names")

    def body(self) -> dict[str, Any]:
        """A write body that names workspace A's objects (what an intruder would send)."""
        ranking = [{"value": "response-1", "rank": 2}, {"value": "response-2", "rank": 1}]
        body = {"workspace": self.ws_a.pk, "dataset": self.dataset.pk, "record": self.record.pk,
                "record_id": self.record.pk, "external_id": self.record.external_id, "question": "ranking",
                "name": "intruder-made", "guidelines": "hijacked", "min_submitted": 1, "status": "submitted",
                "values": {"ranking": ranking}, "username": "intruder-zz", "role": "admin",
                "password": "Intruder-pw-12345", "job": self.job.pk, "items": [], "records": []}
        for model, obj in self.objects.items():
            body.setdefault(model._meta.model_name, obj.pk)
        return body


def _model_hint(route: Route) -> str:
    cls = getattr(route.view, "cls", None) or getattr(route.view, "view_class", None)
    qs = getattr(cls, "queryset", None)
    if qs is not None:
        return qs.model._meta.model_name
    model = getattr(cls, "model", None)
    if model is not None:
        return model._meta.model_name
    words = re.split(r"[-_:]", route.name or "")
    return words[-2] if len(words) > 1 and words[-1] in ("detail", "delete", "update") else (words[-1] if words else "")


@pytest.fixture
def world(db, settings) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
    w = World()
    yield w
    w.close()


# --- calling ----------------------------------------------------------------------------------------

def _login_path() -> str:
    return reverse(settings.LOGIN_URL) if not settings.LOGIN_URL.startswith("/") else settings.LOGIN_URL


def _client(world: World, user) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _call(world: World, route: Route, url: str, method: str, user, *, htmx: bool) -> Any:
    headers: dict[str, str] = {}
    if htmx:
        headers["HX-Request"] = "true"
    body = world.body()
    if route.is_api:
        client = Client(raise_request_exception=False)
        if user is not None:
            headers["Authorization"] = f"Token {world.tokens[user.pk]}"
        kwargs = {"content_type": "application/json", "data": json.dumps(body)} if method != "get" else \
            {"data": {"workspace": world.ws_a.pk, "dataset": world.dataset.pk}}
        if method == "delete":
            kwargs = {}
        return getattr(client, method)(url, headers=headers, **kwargs)
    client = _client(world, user)
    if method == "get":
        return client.get(url, {"workspace": world.ws_a.pk, "dataset": world.dataset.pk}, headers=headers)
    form = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in body.items()}
    if method == "post":
        return client.post(url, form, headers=headers)
    return getattr(client, method)(url, headers=headers)


def _content(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(itertools.islice(response.streaming_content, 2000)).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _describe(route, url, method, who, htmx, response, expected) -> str:
    extra = ""
    if response.status_code >= 500 and getattr(response, "exc_info", None):
        exc = response.exc_info[1]
        extra = f" [{type(exc).__name__}: {str(exc)[:200]}]"
    return (f"{method.upper()} /{url.lstrip('/')} as {who}{' (HX-Request)' if htmx else ''}: "
            f"{response.status_code}, expected {expected}{extra}")


# --- the walk ---------------------------------------------------------------------------------------

def test_the_walk_finds_the_api_and_the_pages():
    routes = {r.route for r in ROUTES}
    assert "api/v1/datasets/<int:dataset_id>/" in routes
    assert any(not r.is_api for r in ROUTES), "the htmx pages are walked too"
    assert all(r.methods for r in ROUTES), [r.route for r in ROUTES if not r.methods]


def test_every_model_of_the_apps_has_an_object_in_workspace_a(world):
    assert not world.unbuilt, world.unbuilt


@pytest.mark.parametrize("route", ROUTES, ids=[r.route or "/" for r in ROUTES])
def test_no_data_crosses_workspaces(world, route):
    problems: list[str] = []
    try:
        kwargs = {name: world.param_value(route, name) for name in route.params}
    except LookupError as exc:
        pytest.fail(str(exc))
    url = "/" + route.route
    for name, value in kwargs.items():
        url = re.sub(rf"<(?:\w+:)?{name}>", str(value), url)
    login = _login_path()
    is_login = url == login
    is_logout = "logout" in (route.name or "")
    has_params = bool(route.params)
    admin_only = bool(ADMIN_ONLY_GET.search(route.name or route.route))
    variants = [False] if route.is_api else [False, True]

    # control: A's admin can reach A's object by GET (otherwise every 404 below would prove nothing)
    if has_params and "get" in route.methods:
        response = _call(world, route, url, "get", world.admin_a, htmx=False)
        if response.status_code == 404:  # pages about one's own answers (history) are the annotator's
            response = _call(world, route, url, "get", world.annotator_a, htmx=False)
        if response.status_code == 404 or response.status_code >= 500:
            problems.append(_describe(route, url, "get", "admin of A (control)", False, response,
                                      "not 404/5xx for the workspace's own admin"))

    for method, htmx in itertools.product(route.methods, variants):
        write = method != "get"
        # 1. an admin of workspace B
        if not is_login and not is_logout:
            before = world.snapshot()
            response = _call(world, route, url, method, world.admin_b, htmx=htmx)
            status = response.status_code
            if has_params:
                ok = status in (403, 404, 405)
                expected = "404 (or 403/405): the object belongs to workspace A"
            else:  # lists and creations: the body/snapshot checks below tell whether A leaked or changed
                ok, expected = status < 500, "no 5xx"
            if not ok:
                problems.append(_describe(route, url, method, "admin of workspace B", htmx, response, expected))
            if MARK in _content(response) and not is_login:
                problems.append(_describe(route, url, method, "admin of workspace B", htmx, response,
                                          "no data of workspace A in the body") + " -- LEAK of A's data")
            changes = world.changes_in_a(before, world.snapshot())
            if changes:
                problems.append(f"{method.upper()} {url} as admin of workspace B changed workspace A: {changes}")

        # 2. an annotator of A where an admin is needed
        if (admin_only and not write) or (write and not ANNOTATOR_WRITES.search(route.name or route.route)):
            if not is_login and not is_logout:
                before = world.snapshot()
                response = _call(world, route, url, method, world.annotator_a, htmx=htmx)
                # a creation without path parameters may reject the (intruder's) body first: 400 is fine
                # there as long as nothing changed
                allowed = (403, 404, 405) if has_params or not write else (400, 403, 404, 405)
                # a list may answer 200 if it leaves workspace A's admin-only objects out
                filtered_list = (not has_params and not write and response.status_code == 200
                                 and MARK not in _content(response))
                if response.status_code not in allowed and not filtered_list:
                    problems.append(_describe(route, url, method, "annotator of A", htmx, response,
                                              "403/404: admin only"))
                changes = world.changes_in_a(before, world.snapshot())
                if changes:
                    problems.append(f"{method.upper()} {url} as annotator of A changed workspace A: {changes}")

        # 3. no credentials
        if not is_login:
            before = world.snapshot()
            response = _call(world, route, url, method, None, htmx=htmx)
            status = response.status_code
            if route.is_api:
                ok, expected = status in (401, 403), "401/403"
            elif is_logout:
                ok, expected = status < 500, "no 5xx"
            else:
                location = response.headers.get("Location", "") or response.headers.get("HX-Redirect", "")
                ok = (status in (301, 302, 303) and location.split("?")[0].endswith(login)) or \
                    (htmx and status in (401, 403) and bool(location)) or status == 405
                expected = f"a redirect to {login}"
            if not ok:
                problems.append(_describe(route, url, method, "anonymous", htmx, response, expected))
            if MARK in _content(response):
                problems.append(_describe(route, url, method, "anonymous", htmx, response,
                                          "no data of workspace A") + " -- LEAK of A's data")
            changes = world.changes_in_a(before, world.snapshot(), any_workspace=True)
            if changes:
                problems.append(f"{method.upper()} {url} anonymously changed data: {changes}")

    assert not problems, f"{route.route} ({route.name}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.is_api and "post" in r.methods
                                   and "login" not in (r.name or "")],
                         ids=[r.route for r in ROUTES if not r.is_api and "post" in r.methods
                              and "login" not in (r.name or "")])
def test_every_page_post_needs_the_csrf_token(world, route):
    kwargs = {name: world.param_value(route, name) for name in route.params}
    url = "/" + route.route
    for name, value in kwargs.items():
        url = re.sub(rf"<(?:\w+:)?{name}>", str(value), url)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(world.admin_a)
    before = world.snapshot()
    response = client.post(url, {"name": "x"}, headers={"HX-Request": "true"})
    assert response.status_code == 403, f"POST {url} without a CSRF token: {response.status_code}"
    assert not world.changes_in_a(before, world.snapshot(), any_workspace=True)

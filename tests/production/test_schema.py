"""schemathesis against /api/schema/, in-process over WSGI, bounded in time.

Every operation of the OpenAPI schema is called with generated query strings and bodies by an admin
of workspace A (token auth), with its path parameters pointing at real objects of workspace A (the
world of test_access) so requests get past the 404s into the views. Checks: no 5xx, and every
response's content type and body match what the schema documents; invalid data (schemathesis'
negative mode) must get a 4xx, never a 5xx. Each operation runs in a
savepoint that is rolled back, so a DELETE does not starve the operations after it.

(schemathesis' pytest plugin does not run under pytest 9, so the strategies are driven directly.)
"""
from __future__ import annotations

import time

import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from preflab.wsgi import application

from .test_access import Route, World

MAX_EXAMPLES = 12       # per operation, valid data (responses must match the schema)
NEGATIVE_EXAMPLES = 6   # per operation, invalid data (must be a 4xx, never a 5xx)
TIME_BUDGET = 60.0      # seconds for the whole run; operations past it are reported as not run


class _Rollback(Exception):
    pass


def _real_path_parameters(world: World, case) -> None:
    for name in list(case.path_parameters or {}):
        route = Route(route=case.path.lstrip("/"), name="", params={}, view=None)
        try:
            case.path_parameters[name] = world.param_value(route, name)
        except LookupError:
            pass  # unknown parameter: keep the generated value (the access walk reports unknown names)


def _text(exc: BaseException) -> str:
    parts = [str(exc)]
    for sub in getattr(exc, "exceptions", ()) or ():
        parts.append(_text(sub))
    return "\n".join(p for p in parts if p)


def _describe(case, response) -> str:
    return (f"{case.method} {case.formatted_path} query={case.query!r} body={str(case.body)[:300]!r} "
            f"-> {response.status_code}: {response.text[:400]!r}")


def test_api_conforms_to_its_schema(wsgi_in_test_transaction, settings, request):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    world = World()
    request.addfinalizer(world.close)
    headers = {"Authorization": f"Token {world.tokens[world.admin_a.pk]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the schema documents the API"
    # writes that remove things last, so a failure elsewhere is not hidden behind a 404
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", op.path))

    failures: dict[str, str] = {}
    calls = {"n": 0}
    started = time.monotonic()
    not_run = []
    for operation in operations:
        if time.monotonic() - started > TIME_BUDGET:
            not_run.append(f"{operation.method.upper()} {operation.path}")
            continue
        label = f"{operation.method.upper()} {operation.path}"
        for mode, examples in ((GenerationMode.POSITIVE, MAX_EXAMPLES), (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
            run = _runner(operation, mode, examples, world, headers, calls)
            try:
                with transaction.atomic():
                    try:
                        run()
                    finally:
                        transaction.set_rollback(True)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    failures[f"{label} [{mode.value}]"] = "schemathesis could not generate a valid request"
                # negative mode: an operation without parameters or body has nothing to make invalid
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - schemathesis raises exception groups
                failures[f"{label} [{mode.value}]"] = _text(exc)[:1500]
    assert calls["n"] >= len(operations) - len(not_run), "every operation was called"
    assert not failures, f"{len(failures)} operations failed ({calls['n']} calls, not run: {not_run}):\n\n" + \
        "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def _runner(operation, mode, examples: int, world: World, headers: dict, calls: dict):
    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        _real_path_parameters(world, case)
        response = case.call(headers=headers)
        calls["n"] += 1
        if response.status_code >= 500:
            raise AssertionError(f"server error ({mode.value} data): " + _describe(case, response))
        if mode is GenerationMode.NEGATIVE and response.status_code < 400:
            return  # schemathesis' invalid data is sometimes valid for the view (e.g. a string where any text goes)
        try:
            # the status code is one the operation declares (its 400/401/403/404 too), and the body and content
            # type are the ones declared for that status, error bodies included
            case.validate_response(response, checks=(status_code_conformance, content_type_conformance,
                                                     response_schema_conformance))
        except BaseExceptionGroup as exc:  # schemathesis raises its own failure group
            raise AssertionError(f"does not match the schema: {_describe(case, response)}\n{_text(exc)}") from None

    return run


# --- the error answers the schema declares ---------------------------------------------------------------

def _schema() -> dict:
    from rest_framework.test import APIClient

    return APIClient().get("/api/schema/?format=json").json()


def _body_matches(schema: dict, response_schema: dict, body) -> list[str]:
    import jsonschema

    resolver_schema = {**response_schema, "components": schema["components"]}
    validator = jsonschema.Draft202012Validator(resolver_schema)
    return [e.message for e in validator.iter_errors(body)]


def test_every_operation_declares_its_error_answers(db):
    schema = _schema()
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            has_input = "requestBody" in operation or operation.get("parameters")
            expected = {"401", "403"} | ({"400", "404"} if has_input else set())
            undeclared = expected - set(operation["responses"])
            if undeclared:
                missing.append(f"{method.upper()} {path}: {sorted(undeclared)}")
    assert not missing, "\n".join(missing)


def test_the_declared_error_bodies_are_the_ones_the_api_gives(db, workspace, admin_user, annotator, dataset):
    """A real 400 (two bad fields), 401, 403 and 404 of the API match the body schemas the operations declare."""
    from rest_framework.test import APIClient

    from tests.conftest import client_for

    schema = _schema()
    create = schema["paths"]["/api/v1/datasets/"]["post"]["responses"]
    detail = schema["paths"]["/api/v1/datasets/{dataset_id}/"]["get"]["responses"]
    publish = schema["paths"]["/api/v1/datasets/{dataset_id}/publish/"]["post"]["responses"]
    answers = {
        "400": (create, client_for(admin_user).post("/api/v1/datasets/", {"workspace": workspace.pk, "name": "",
                                                                          "min_submitted": -1}, format="json")),
        "401": (detail, APIClient().get(f"/api/v1/datasets/{dataset.pk}/")),
        "403": (publish, client_for(annotator).post(f"/api/v1/datasets/{dataset.pk}/publish/")),
        "404": (detail, client_for(admin_user).get("/api/v1/datasets/999999/")),
    }
    for code, (responses, response) in answers.items():
        assert str(response.status_code) == code, (code, response.status_code, response.content[:300])
        declared = responses[code]["content"]["application/json"]["schema"]
        assert _body_matches(schema, declared, response.json()) == [], (code, response.json())
    assert {"name", "min_submitted"} <= set(answers["400"][1].json())
    # and the schemas are not so loose that anything passes
    error_detail = {"$ref": "#/components/schemas/ErrorDetail"}
    assert _body_matches(schema, error_detail, {"message": "x"})
    assert _body_matches(schema, {"$ref": "#/components/schemas/ValidationError"}, {})

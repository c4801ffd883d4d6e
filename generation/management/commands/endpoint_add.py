"""manage.py endpoint_add --name NAME --model MODEL --base-url URL [--api-key-env VAR] [options]

Adds (or with --update changes) a model endpoint of a workspace. API keys are never stored:
--api-key-env names the environment variable that holds the key where the workers run.
"""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from generation.models import Endpoint
from generation.services import endpoint_create, endpoint_update

from ._common import params_arg, workspace_arg


class Command(BaseCommand):
    help = "Add a model endpoint (OpenAI-compatible server or in-process vLLM) to a workspace."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="workspace name or id (optional when there is only one)")
        parser.add_argument("--name", required=True)
        parser.add_argument("--model", help="model name as the server knows it")
        parser.add_argument("--backend", choices=Endpoint.Backend.values)
        parser.add_argument("--base-url", help="e.g. http://localhost:8000/v1 (vllm serve) or https://api.openai.com/v1")
        parser.add_argument("--api-key-env", help="NAME of the environment variable holding the API key")
        parser.add_argument("--max-concurrency", type=int)
        parser.add_argument("--param", action="append", metavar="KEY=VALUE",
                            help="default generation parameter, e.g. --param temperature=0.7 --param max_tokens=512")
        parser.add_argument("--system-prompt")
        parser.add_argument("--queue", help="Celery queue for this endpoint's jobs")
        parser.add_argument("--timeout", type=float)
        parser.add_argument("--max-retries", type=int)
        parser.add_argument("--update", action="store_true", help="change an existing endpoint")

    def handle(self, *args, **o):
        workspace = workspace_arg(o.get("workspace"))
        values = {"name": o["name"]}
        for opt, field in (("model", "model"), ("backend", "backend"), ("base_url", "base_url"),
                           ("api_key_env", "api_key_env"), ("max_concurrency", "max_concurrency"),
                           ("system_prompt", "system_prompt"), ("queue", "queue"), ("timeout", "timeout"),
                           ("max_retries", "max_retries")):
            if o.get(opt) is not None:
                values[field] = o[opt]
        if o.get("param"):
            values["params"] = params_arg(o["param"], "--param")
        try:
            if o["update"]:
                endpoint = Endpoint.objects.filter(workspace=workspace, name=o["name"]).first()
                if endpoint is None:
                    raise CommandError(f"no endpoint {o['name']!r} in {workspace.name!r}")
                endpoint = endpoint_update(endpoint=endpoint, **values)
            else:
                if "model" not in values:
                    raise CommandError("--model is required")
                endpoint = endpoint_create(workspace=workspace, **values)
        except ValidationError as exc:
            raise CommandError(validation_message(exc))
        self.stdout.write(self.style.SUCCESS(
            f"endpoint {endpoint.name} (id {endpoint.pk}): {endpoint.backend} {endpoint.model} "
            f"{endpoint.base_url} concurrency {endpoint.max_concurrency}"))

"""Browser forms of the generation pages. They only parse input; the services validate and write."""
from __future__ import annotations

from django import forms

from annotation.forms import json_object_value
from annotation.models import Dataset

from .models import Endpoint
from .services import PROMPT_FORMATS


class EndpointForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=None)
    name = forms.SlugField(max_length=100)
    backend = forms.ChoiceField(choices=Endpoint.Backend.choices, initial=Endpoint.Backend.OPENAI_COMPATIBLE)
    base_url = forms.CharField(required=False, max_length=500, help_text="e.g. http://localhost:8000/v1 (vllm serve) "
                                                                        "or https://api.openai.com/v1")
    model = forms.CharField(max_length=300)
    api_key_env = forms.CharField(required=False, max_length=100, label="API key environment variable",
                                  help_text="The NAME of the variable holding the key on the workers "
                                            "(e.g. OPENAI_API_KEY). Keys are never stored.")
    max_concurrency = forms.IntegerField(min_value=1, max_value=4096, initial=16)
    params = forms.CharField(required=False, initial='{"temperature": 0.7, "max_tokens": 1024}',
                             help_text="Default parameters (JSON): temperature, top_p, top_k, max_tokens, seed, stop")
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    queue = forms.CharField(required=False, max_length=64, help_text="Celery queue; empty = the default queue")
    timeout = forms.FloatField(min_value=0.1, max_value=3600, initial=120)
    max_retries = forms.IntegerField(min_value=0, max_value=20, initial=5)

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces

    def clean_params(self):
        return json_object_value(self.cleaned_data.get("params"), "parameters")


class GenerationJobForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=None)
    endpoints = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple,
                                               help_text="The pool of models")
    strategy = forms.ChoiceField(choices=[("sample", "sample — n endpoints drawn from the pool per prompt (seeded)"),
                                          ("each", "each — every endpoint once"),
                                          ("samples", "samples — one endpoint, n samples")], initial="sample")
    n = forms.IntegerField(min_value=2, max_value=16, initial=2, required=False, label="Responses per prompt",
                           help_text="'each': the pool size")
    seed = forms.IntegerField(initial=0)
    temperatures = forms.CharField(required=False, help_text="'samples' only: one per response, e.g. 0.3, 0.8")
    overrides = forms.CharField(required=False, help_text='Per-endpoint parameters (JSON), e.g. {"qwen": {"temperature": 0.2}}')
    prompts_file = forms.FileField(required=False, help_text="JSONL, CSV or Parquet")
    column = forms.CharField(initial="prompt", max_length=200)
    id_column = forms.CharField(required=False, max_length=200, help_text="Optional: becomes the record id")
    format = forms.ChoiceField(choices=[("", "from the file name")] + [(f, f) for f in PROMPT_FORMATS], required=False)
    prompts_dataset = forms.ModelChoiceField(queryset=None, required=False,
                                             help_text="…or take the prompts of this dataset's records")
    dataset = forms.ModelChoiceField(queryset=None, required=False, label="Target dataset",
                                     help_text="Needs prompt, response-1..n and a ranking question")
    dataset_name = forms.CharField(required=False, max_length=200, label="…or a new dataset named")

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces
        self.fields["endpoints"].queryset = Endpoint.objects.filter(workspace__in=workspaces).order_by("name")
        datasets = Dataset.objects.filter(workspace__in=workspaces).order_by("name")
        self.fields["dataset"].queryset = datasets
        self.fields["prompts_dataset"].queryset = datasets

    def clean_temperatures(self):
        raw = (self.cleaned_data.get("temperatures") or "").strip()
        if not raw:
            return None
        try:
            return [float(t) for t in raw.replace(";", ",").split(",") if t.strip()]
        except ValueError:
            raise forms.ValidationError("comma-separated numbers, e.g. 0.3, 0.8")

    def clean_overrides(self):
        return json_object_value(self.cleaned_data.get("overrides"), "endpoint name to parameters")

    def clean(self):
        data = super().clean()
        if bool(data.get("prompts_file")) == bool(data.get("prompts_dataset")):
            raise forms.ValidationError("upload a prompt file or choose a dataset to take the prompts from (one of them)")
        if bool(data.get("dataset")) == bool((data.get("dataset_name") or "").strip()):
            raise forms.ValidationError("choose a target dataset or give a name for a new one (one of them)")
        ws = data.get("workspace")
        if ws is not None:
            for key in ("dataset", "prompts_dataset"):
                if data.get(key) is not None and data[key].workspace_id != ws.pk:
                    self.add_error(key, "not in the chosen workspace")
            for e in data.get("endpoints") or []:
                if e.workspace_id != ws.pk:
                    self.add_error("endpoints", f"{e.name} is not in the chosen workspace")
                    break
        return data

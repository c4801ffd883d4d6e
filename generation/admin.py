from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import Endpoint, GenerationOutput
from .services import ENDPOINT_FIELDS, endpoint_values_validate


class EndpointAdminForm(forms.ModelForm):
    """The same checks as the API and CLI (e.g. api_key_env must be a variable NAME, not a key)."""

    class Meta:
        model = Endpoint
        fields = ["workspace", "name", "backend", "base_url", "model", "api_key_env", "max_concurrency", "params",
                  "system_prompt", "queue", "timeout", "max_retries", "supports_json_schema"]

    def clean(self):
        data = super().clean()
        workspace = data.get("workspace")
        if workspace is not None:
            values = {k: data[k] for k in ENDPOINT_FIELDS if k in data}
            try:
                data.update(endpoint_values_validate(values, workspace=workspace,
                                               instance=self.instance if self.instance.pk else None))
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, messages)
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointAdminForm
    list_display = ["name", "workspace", "backend", "model", "base_url", "api_key_env", "max_concurrency", "queue"]
    list_filter = ["backend", "workspace"]
    search_fields = ["name", "model"]


@admin.register(GenerationOutput)
class GenerationOutputAdmin(admin.ModelAdmin):
    list_display = ["job", "prompt_key", "slot", "endpoint", "model", "completion_tokens", "latency_s", "finish_reason"]
    list_filter = ["endpoint"]
    raw_id_fields = ["job"]
    show_full_result_count = False

from django.contrib import admin

from .models import Judge, JudgeOutput, JudgeVerdict


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "method", "aspect", "endpoint", "use_structured_output", "created_at"]
    list_filter = ["method", "aspect"]
    search_fields = ["name"]
    readonly_fields = ["position_bias"]


@admin.register(JudgeOutput)
class JudgeOutputAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "record", "call_key", "attempts", "error"]
    list_filter = ["call_key"]
    raw_id_fields = ["job", "record", "judge"]
    readonly_fields = ["raw_text", "parsed", "failed_attempts"]


@admin.register(JudgeVerdict)
class JudgeVerdictAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "record", "status", "error"]
    list_filter = ["status"]
    raw_id_fields = ["job", "record", "judge"]

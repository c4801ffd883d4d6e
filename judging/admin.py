from django.contrib import admin

from .models import Judge, JudgeOutput, JudgeVerdict, SimulatedAnnotator, SimulatedAnswer


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


@admin.register(SimulatedAnnotator)
class SimulatedAnnotatorAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "judge", "flip_probability", "seed", "created_at"]
    list_filter = ["workspace"]
    raw_id_fields = ["user", "judge"]


@admin.register(SimulatedAnswer)
class SimulatedAnswerAdmin(admin.ModelAdmin):
    list_display = ["id", "annotator", "record", "noised", "error"]
    list_filter = ["noised"]
    raw_id_fields = ["annotator", "record"]

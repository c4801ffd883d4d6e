from django.contrib import admin

from .models import Dataset, Field, Job, JobError, Membership, Question, Record, Response, Suggestion, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


class FieldInline(admin.TabularInline):
    model = Field
    extra = 1


class QuestionInline(admin.StackedInline):
    model = Question
    extra = 1


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "status", "min_submitted", "allow_ties", "created_at"]
    list_filter = ["status", "workspace"]
    search_fields = ["name"]
    inlines = [FieldInline, QuestionInline]


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ["external_id", "dataset", "priority", "submitted_count", "completed", "is_gold"]
    list_filter = ["completed", "is_gold"]
    search_fields = ["external_id"]
    raw_id_fields = ["dataset"]
    show_full_result_count = False
    # gold is marked through its service (record page, API, import_gold), which checks the answer
    readonly_fields = ["is_gold", "gold_answer"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["record", "user", "status", "duration", "updated_at"]
    list_filter = ["status"]
    raw_id_fields = ["record", "dataset", "user"]
    show_full_result_count = False


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ["record", "question", "agent", "score"]
    raw_id_fields = ["record", "question"]
    show_full_result_count = False


class JobErrorInline(admin.TabularInline):
    model = JobError
    extra = 0
    readonly_fields = ["item", "error", "raw"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "name", "workspace", "status", "done", "failed", "total", "created_at"]
    list_filter = ["kind", "status"]
    inlines = [JobErrorInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "is_simulated"]
    list_filter = ["role", "workspace"]

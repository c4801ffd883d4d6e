"""REST API of the annotation app (DRF): one small view per operation, logic in services.

Access rules live in annotation.access (dataset_for_user, record_for_user, workspace_for_user):
objects of a workspace the caller is not a member of answer 404, a role too low answers 403,
no credentials answer 401. Every 400 names the field and the reason.
"""

import math

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access, hotpath, selectors, services
from .api_common import StrictInputSerializer, validated_input
from .errors import AnnotatorPaused
from .job_apis import JobStatusOutputSerializer
from .job_selectors import job_status
from .models import Dataset, Field, Membership, Question, Record, Response, Suggestion, Workspace
from .quality.options import QUALITY_HELP, QUALITY_SETTINGS

# --- shared serializers ------------------------------------------------------------------------



class FieldSerializer(serializers.ModelSerializer):
    class Meta:
        model = Field
        fields = ["name", "title", "kind", "required", "position"]


class QuestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Question
        fields = ["name", "title", "description", "kind", "required", "options", "position"]


class ProgressSerializer(serializers.Serializer):
    records = serializers.IntegerField()
    completed = serializers.IntegerField()
    submitted_responses = serializers.IntegerField()

    class Meta:
        ref_name = "DatasetProgress"


_ADMINS = "Workspace admins only (left out for other members). "


class DatasetOutputSerializer(serializers.ModelSerializer):
    fields = FieldSerializer(many=True, read_only=True)
    questions = QuestionSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    # the quality settings (annotation.quality.options): shown to the workspace's admins only, so not required
    gold_rate = serializers.FloatField(required=False, help_text=_ADMINS + QUALITY_HELP["gold_rate"])
    gold_pause_accuracy = serializers.FloatField(required=False, allow_null=True,
                                                 help_text=_ADMINS + QUALITY_HELP["gold_pause_accuracy"])
    gold_pause_min_answers = serializers.IntegerField(required=False, help_text=_ADMINS + QUALITY_HELP["gold_pause_min_answers"])
    too_fast_seconds = serializers.FloatField(required=False, help_text=_ADMINS + QUALITY_HELP["too_fast_seconds"])
    exclude_removed_annotators = serializers.BooleanField(required=False,
                                                          help_text=_ADMINS + QUALITY_HELP["exclude_removed_annotators"])
    suggestion_share = serializers.FloatField(required=False, help_text=_ADMINS + QUALITY_HELP["suggestion_share"])

    class Meta:
        model = Dataset
        ref_name = "Dataset"
        fields = ["id", "workspace", "name", "guidelines", "min_submitted", "allow_ties", "show_suggestions",
                  "shuffle_responses", "prompt_field", "visible_metadata", "status", "created_at", "updated_at",
                  "fields", "questions", "progress", *QUALITY_SETTINGS]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not self._quality_visible(instance):
            for name in QUALITY_SETTINGS:
                data.pop(name, None)
        return data

    def _quality_visible(self, dataset) -> bool:
        """Admins of the dataset's workspace see its quality settings (context: `admin_workspace_ids` for a
        list, else `request`, whose user's role came with the dataset from access.dataset_for_user)."""
        admin_ids = self.context.get("admin_workspace_ids")
        if admin_ids is not None:
            return dataset.workspace_id in admin_ids
        request = self.context.get("request")
        return request is not None and selectors.gold_visible(dataset=dataset, user=request.user)

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj) -> dict:
        progress = self.context.get("progress")
        if progress is not None and obj.pk in progress:
            return progress[obj.pk]
        return selectors.dataset_progress(obj)


class ResponseOutputSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Response
        ref_name = "Response"
        fields = ["id", "record", "user", "values", "status", "display_order", "duration",
                  "created_at", "updated_at"]


class SuggestionOutputSerializer(serializers.ModelSerializer):
    question = serializers.CharField(source="question.name", read_only=True)

    class Meta:
        model = Suggestion
        ref_name = "Suggestion"
        fields = ["id", "question", "value", "score", "agent", "rationale", "updated_at"]


class RecordOutputSerializer(serializers.ModelSerializer):
    """A record as the caller sees it: their own response and, when visible, the suggestions."""

    response = serializers.SerializerMethodField()
    suggestions = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField(help_text=(
        "All of it for a workspace admin; for anyone else only the keys the dataset's visible_metadata names."))

    priority = serializers.FloatField(required=False, help_text=(
        "Workspace admins only (left out for other members): the queue order, higher first (the judges' doubt). "
        "An annotator is not told it: a high one says the judges disagree, and a gold record's would set it apart."))
    is_gold = serializers.BooleanField(required=False, help_text=(
        "Workspace admins only (left out for other members): whether the record is a gold record, served to "
        "every annotator to measure them."))
    gold_answer = serializers.JSONField(required=False, allow_null=True, help_text=(
        "Workspace admins only (left out for other members): a gold record's known answer."))

    class Meta:
        model = Record
        ref_name = "Record"
        fields = ["id", "external_id", "fields", "metadata", "priority", "submitted_count", "completed",
                  "response", "suggestions", "is_gold", "gold_answer"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_metadata(self, obj) -> dict:
        return selectors.metadata_only(obj.metadata, self.context["metadata_keys"])

    @extend_schema_field(ResponseOutputSerializer(allow_null=True))
    def get_response(self, obj) -> dict | None:
        mine = getattr(obj, "my_responses", None)
        if mine is None:
            user = self.context["request"].user
            mine = list(Response.objects.filter(record=obj, user=user).select_related("user"))
        return ResponseOutputSerializer(mine[0]).data if mine else None

    @extend_schema_field(SuggestionOutputSerializer(many=True))
    def get_suggestions(self, obj) -> list[dict]:
        if not self.context.get("show_suggestions"):
            return []
        if not self.context.get("is_admin") and not selectors.suggestions_shown_for(
                record=obj, user=self.context["request"].user, dataset=self.context["dataset"], has_suggestions=True):
            return []  # the anchoring experiment: this assignment is not shown the judges' suggestions
        items = getattr(obj, "visible_suggestions", None)
        if items is None:
            items = obj.suggestions.select_related("question").order_by("question__position", "agent", "id")
        return SuggestionOutputSerializer(items, many=True).data

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not self.context.get("gold_visible"):
            data.pop("is_gold", None)
            data.pop("gold_answer", None)
            data.pop("priority", None)
        if instance.is_gold and not self.context.get("is_admin"):
            own = data.get("response")
            data["submitted_count"], data["completed"] = selectors.record_counts_shown(
                record=instance, dataset=self.context["dataset"], is_admin=False, own_status=own and own["status"])
        return data


def _records_with_context(queryset, user):
    """Prefetch the caller's response and the suggestions of a page of records (no N+1)."""
    return queryset.prefetch_related(
        Prefetch("responses", queryset=Response.objects.filter(user=user).select_related("user"),
                 to_attr="my_responses"),
        Prefetch("suggestions", queryset=Suggestion.objects.select_related("question")
                 .order_by("question__position", "agent", "id"), to_attr="visible_suggestions"),
    )


def _record_context(request, dataset) -> dict:
    gold_visible = selectors.gold_visible(dataset=dataset, user=request.user)  # workspace admins
    return {"request": request, "dataset": dataset, "is_admin": gold_visible, "gold_visible": gold_visible,
            "show_suggestions": selectors.suggestions_visible(dataset=dataset, user=request.user),
            "metadata_keys": selectors.metadata_keys_visible(dataset=dataset, user=request.user)}


# --- workspaces --------------------------------------------------------------------------------

class WorkspaceOutputSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, allow_null=True, help_text="The caller's role here.")

    class Meta:
        model = Workspace
        ref_name = "Workspace"
        fields = ["id", "name", "created_at", "role"]


class WorkspaceListCreateApi(APIView):
    class InputSerializer(StrictInputSerializer):
        name = serializers.CharField(max_length=120)

        class Meta:
            ref_name = "WorkspaceCreateInput"

    @extend_schema(responses=WorkspaceOutputSerializer(many=True),
                   description="Workspaces the caller is a member of (all of them for staff).")
    def get(self, request):
        qs = access.workspaces_with_role(request.user).order_by("name")
        return ApiResponse(WorkspaceOutputSerializer(qs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: WorkspaceOutputSerializer},
                   description="Staff only. The creator becomes an admin of the workspace.")
    def post(self, request):
        if not request.user.is_staff:
            raise exceptions.PermissionDenied("Only staff may create workspaces.")
        data = validated_input(self.InputSerializer, request.data)
        workspace = services.workspace_create(name=data["name"], creator=request.user)
        workspace.role = Membership.Role.ADMIN
        return ApiResponse(WorkspaceOutputSerializer(workspace).data, status=status.HTTP_201_CREATED)


class MemberOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        ref_name = "Member"
        fields = ["username", "role", "is_simulated", "is_imported", "created_at"]


class MemberListCreateApi(APIView):
    class InputSerializer(StrictInputSerializer):
        username = serializers.CharField(max_length=254, help_text=(
            "A user name (or, to invite, an e-mail address). A workspace admin adds an account of the "
            "installation only by inviting it: it joins once it accepts on its account page."))
        role = serializers.ChoiceField(choices=Membership.Role.choices)
        password = serializers.CharField(required=False, write_only=True, allow_blank=False,
                                         style={"input_type": "password"})
        is_simulated = serializers.BooleanField(required=False, default=False)

        class Meta:
            ref_name = "MemberUpsertInput"

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.CharField()
        token = serializers.CharField(allow_null=True, help_text=(
            "The member's API token: given for a user created by this call (or to staff), "
            "null for an existing user."))
        created = serializers.BooleanField(help_text="Whether the user account was created by this call.")
        invited = serializers.BooleanField(help_text=(
            "True (status 202): an invitation was recorded; the account, if one by this name or e-mail "
            "exists, joins once it accepts. The answer is the same whether it exists or not."))
        detail = serializers.CharField()

        class Meta:
            ref_name = "MemberUpsertResult"

    @extend_schema(responses=MemberOutputSerializer(many=True), description="Workspace admin or staff.")
    def get(self, request, workspace_id: int):
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        return ApiResponse(MemberOutputSerializer(selectors.members_of(workspace), many=True).data)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, 201: OutputSerializer,
                                                       202: OutputSerializer},
                   description="Change a member's role (200), create a new account as a member (201: a "
                               "user name nobody has, with a password), or invite an account (202: it "
                               "joins once it accepts). Staff add any account directly. Workspace admin or staff.")
    def post(self, request, workspace_id: int):
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        data = validated_input(self.InputSerializer, request.data)
        existing = get_user_model().objects.filter(username=data["username"]).first()
        password = data.get("password")
        if password is not None:
            services.member_password_check(actor=request.user, username=data["username"], password=password)
            try:
                validate_password(password, user=existing)
            except DjangoValidationError as exc:
                raise DjangoValidationError({"password": exc.messages}) from exc
        added = services.member_add(actor=request.user, workspace=workspace, username=data["username"],
                                    role=data["role"], password=password, is_simulated=data.get("is_simulated", False))
        if added.invited:
            body = {"username": data["username"], "role": data["role"], "token": None, "created": False,
                    "invited": True, "detail": added.message}
            return ApiResponse(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)
        membership = added.membership
        reveal = added.created or request.user.is_staff or membership.user_id == request.user.pk
        body = {"username": membership.user.username, "role": membership.role,
                "token": added.token if reveal else None, "created": added.created, "invited": False,
                "detail": added.message}
        return ApiResponse(self.OutputSerializer(body).data,
                           status=status.HTTP_201_CREATED if added.created else status.HTTP_200_OK)


class MemberDeleteApi(APIView):
    @extend_schema(responses={204: None}, description="Remove a member from the workspace (their responses "
                                                       "stay). Workspace admin or staff.")
    def delete(self, request, workspace_id: int, username: str):
        workspace = access.workspace_for_user(request.user, workspace_id, role=access.ADMIN)
        membership = selectors.members_of(workspace).filter(user__username=username).first()
        if membership is None:
            raise Http404("No such member.")
        services.member_remove(workspace=workspace, user=membership.user)
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


# --- datasets ----------------------------------------------------------------------------------

class FieldInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Field.Kind.choices, required=False)
    required = serializers.BooleanField(required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=32767)

    class Meta:
        ref_name = "FieldInput"


class QuestionInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    required = serializers.BooleanField(required=False)
    options = serializers.JSONField(required=False, help_text=(
        'ranking: {"values": [field names]}; rating: {"values": [ints], "compares": [field, field]?}; '
        'label: {"values": [labels], "multiple": bool}; text: {}; preference: {"compares": [field, field], '
        '"scale": [{"label": text, "value": number}, ...] (1-4 levels, strongest first)?, "both_bad": bool?}'))
    position = serializers.IntegerField(required=False, min_value=0, max_value=32767)

    class Meta:
        ref_name = "QuestionInput"


class QualitySettingsInput(serializers.Serializer):
    """The quality settings a dataset's create and update take (services.dataset_update checks the ranges)."""

    gold_rate = serializers.FloatField(required=False, help_text=QUALITY_HELP["gold_rate"])
    gold_pause_accuracy = serializers.FloatField(required=False, allow_null=True, help_text=QUALITY_HELP["gold_pause_accuracy"])
    gold_pause_min_answers = serializers.IntegerField(required=False, help_text=QUALITY_HELP["gold_pause_min_answers"])
    too_fast_seconds = serializers.FloatField(required=False, help_text=QUALITY_HELP["too_fast_seconds"])
    exclude_removed_annotators = serializers.BooleanField(required=False, help_text=QUALITY_HELP["exclude_removed_annotators"])
    suggestion_share = serializers.FloatField(required=False, help_text=QUALITY_HELP["suggestion_share"])


class DatasetListCreateApi(APIView):
    class InputSerializer(QualitySettingsInput, StrictInputSerializer):
        workspace = serializers.IntegerField()
        name = serializers.CharField(max_length=200)
        guidelines = serializers.CharField(required=False, allow_blank=True)
        min_submitted = serializers.IntegerField(required=False, min_value=1, max_value=100)
        allow_ties = serializers.BooleanField(required=False)
        show_suggestions = serializers.BooleanField(required=False)
        shuffle_responses = serializers.BooleanField(required=False)
        prompt_field = serializers.CharField(required=False, max_length=100)
        visible_metadata = serializers.ListField(child=serializers.CharField(max_length=100), required=False, help_text=(
            "The record metadata keys annotators see (default none: provenance, original labels, judge "
            "internals and gold answers stay with admins)."))
        fields = FieldInputSerializer(many=True, allow_empty=False)
        questions = QuestionInputSerializer(many=True, allow_empty=False)

        class Meta:
            ref_name = "DatasetCreateInput"

    @extend_schema(parameters=[OpenApiParameter("workspace", int, description="Only this workspace's datasets")],
                   responses=DatasetOutputSerializer(many=True))
    def get(self, request):
        workspace_id = request.query_params.get("workspace")
        if workspace_id not in (None, "") and not str(workspace_id).isdigit():
            raise DjangoValidationError({"workspace": "must be a workspace id"})
        datasets = list(selectors.datasets_for_user(request.user, workspace_id=workspace_id)
                        .prefetch_related("fields", "questions"))
        progress = selectors.datasets_progress([d.pk for d in datasets])
        admin_ids = set(access.workspaces_for_user(request.user, role=access.ADMIN).values_list("pk", flat=True))
        return ApiResponse(DatasetOutputSerializer(datasets, many=True, context={
            "progress": progress, "admin_workspace_ids": admin_ids}).data)

    @extend_schema(request=InputSerializer, responses={201: DatasetOutputSerializer},
                   description="Create a dataset with its fields and questions (workspace admin).")
    def post(self, request):
        data = validated_input(self.InputSerializer, request.data)
        workspace = access.workspace_for_user(request.user, data.pop("workspace"), role=access.ADMIN)
        # the raw definitions go to the service, which validates names, options and references
        fields = [dict(f) for f in data.pop("fields")]
        questions = [dict(q) for q in data.pop("questions")]
        dataset = services.dataset_create(workspace=workspace, fields=fields, questions=questions,
                                          created_by=request.user, **data)
        return ApiResponse(DatasetOutputSerializer(dataset, context={"request": request}).data,
                           status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    class InputSerializer(QualitySettingsInput, StrictInputSerializer):
        name = serializers.CharField(max_length=200, required=False)
        guidelines = serializers.CharField(required=False, allow_blank=True)
        min_submitted = serializers.IntegerField(required=False, min_value=1, max_value=100)
        allow_ties = serializers.BooleanField(required=False)
        show_suggestions = serializers.BooleanField(required=False)
        shuffle_responses = serializers.BooleanField(required=False)
        prompt_field = serializers.CharField(required=False, max_length=100)
        visible_metadata = serializers.ListField(child=serializers.CharField(max_length=100), required=False, help_text=(
            "The record metadata keys annotators see (default none: provenance, original labels, judge "
            "internals and gold answers stay with admins)."))
        status = serializers.ChoiceField(choices=Dataset.Status.choices, required=False)

        class Meta:
            ref_name = "DatasetUpdateInput"

    @extend_schema(responses=DatasetOutputSerializer, description="Any member of the dataset's workspace.")
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id)
        return ApiResponse(DatasetOutputSerializer(dataset, context={"request": request}).data)

    @extend_schema(request=InputSerializer, responses=DatasetOutputSerializer,
                   description="Change settings (workspace admin). Fields and questions are fixed once created.")
    def patch(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        data = validated_input(self.InputSerializer, request.data)
        dataset = services.dataset_update(dataset=dataset, **data)
        return ApiResponse(DatasetOutputSerializer(dataset, context={"request": request}).data)

    @extend_schema(responses={204: None, 202: JobStatusOutputSerializer},
                   description="Delete the dataset and everything in it (workspace admin). Up to PREFLAB_DELETE_IN_REQUEST_MAX "
                               "records (100,000 by default) go at once (204); a bigger dataset is archived at once and "
                               "deleted by a background job (202 with the job's status; its page is /jobs/<id>/).")
    def delete(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        _counts, job = services.dataset_delete_or_enqueue(dataset=dataset, user=request.user)
        if job is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(job_status(job), status=status.HTTP_202_ACCEPTED, headers={"Location": reverse("job-detail", args=[job.pk])})


class DatasetPublishApi(APIView):
    @extend_schema(request=None, responses=DatasetOutputSerializer,
                   description="Open the dataset to annotators (workspace admin).")
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        dataset = services.dataset_publish(dataset=dataset)
        return ApiResponse(DatasetOutputSerializer(dataset, context={"request": request}).data)


# --- records -----------------------------------------------------------------------------------

class RecordCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


_PaginatedRecords = inline_serializer("PaginatedRecordList", fields={
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": RecordOutputSerializer(many=True),
})


class RecordListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=list(selectors.RECORD_STATUS),
                             description="Record completion (submitted responses reached min_submitted)"),
            OpenApiParameter("response_status", str, enum=list(selectors.RESPONSE_STATUS),
                             description="The caller's response status; 'missing' = no response"),
            OpenApiParameter("has_my_response", bool),
            OpenApiParameter("gold", bool, description="Gold records only (true) or none of them (false); "
                                                       "workspace admins only"),
            OpenApiParameter("metadata.<key>", str, description="Metadata key equal to the value "
                             "(as a string, number or boolean); nested keys with '.'"),
            OpenApiParameter("cursor", str), OpenApiParameter("page_size", int),
        ],
        responses=_PaginatedRecords,
        description="Records of the dataset (any member), oldest first, cursor-paginated.")
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id)
        qs = selectors.records_for(dataset=dataset, user=request.user, filters=request.query_params)
        paginator = RecordCursorPagination()
        page = paginator.paginate_queryset(_records_with_context(qs, request.user), request, view=self)
        data = RecordOutputSerializer(page, many=True, context=_record_context(request, dataset)).data
        return paginator.get_paginated_response(data)


class DatasetRecordsApi(RecordListApi):
    """/datasets/{id}/records/: GET lists (RecordListApi), POST imports (annotation.apis_io.RecordImportApi)."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   description="Import records: a JSON array or NDJSON body (Content-Type: application/x-ndjson) "
                               "of {external_id, fields, metadata, priority}. Workspace admin.")
    def post(self, request, *args, **kwargs):
        from .apis_io import RecordImportApi

        return RecordImportApi.as_view()(request._request, *args, **kwargs)


class RecordDetailApi(APIView):
    @extend_schema(responses=RecordOutputSerializer, description="Any member of the record's workspace.")
    def get(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id)
        return ApiResponse(RecordOutputSerializer(record, context=_record_context(request, record.dataset)).data)


class NextRecordApi(hotpath.HotPathAuthMixin, APIView):
    hotpath_object = {"GET": ("dataset", "dataset_id")}

    class OutputSerializer(RecordOutputSerializer):
        display_order = serializers.ListField(child=serializers.CharField(), help_text=(
            "The ranked fields in the order to show them to this annotator (send it back with the response)."))
        draft = serializers.JSONField(allow_null=True, help_text="The caller's draft values, if any.")

        class Meta(RecordOutputSerializer.Meta):
            ref_name = "NextRecord"
            fields = RecordOutputSerializer.Meta.fields + ["display_order", "draft"]

    @extend_schema(responses={200: OutputSerializer, 204: None,
                              403: OpenApiResponse(description="Your role does not allow this, or you are paused on this "
                                                               "dataset: `detail` says why. Nothing you did is lost; you "
                                                               "may still answer the record you hold.")},
                   description="The next record for the caller (a lease is held for them), or 204 when "
                               "none is left. Published datasets only.")
    def get(self, request, dataset_id: int):
        dataset = hotpath.dataset_for_member(request.user, dataset_id, view=self)
        if dataset.status != Dataset.Status.PUBLISHED:
            raise DjangoValidationError({"dataset": f"this dataset is {dataset.status}, not published: "
                                                    "records are handed out only once it is published"})
        try:
            record = services.next_record_for(request.user, dataset)
        except AnnotatorPaused as exc:
            raise exceptions.PermissionDenied(exc.reason) from None
        if record is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        record.dataset = dataset
        # The hot path of every annotator: the output is built as a plain dict (same schema as
        # OutputSerializer) and a freshly leased record needs no look-up of the caller's response.
        if getattr(record, "_preflab_unanswered", False):
            mine = []
        else:
            mine = list(Response.objects.filter(record=record, user=request.user).select_related("user"))
        display_order = services.display_order_for(
            record=record, user_id=request.user.pk, field_names=selectors.ranked_fields_of(selectors.dataset_questions(dataset)),
            shuffle=dataset.shuffle_responses)
        is_admin = access.role_at_least(access.dataset_role(dataset, request.user), access.ADMIN)
        if dataset.show_suggestions:  # the anchoring experiment decides per (record, caller)
            show = bool(selectors.suggestions_shown_for(record=record, user=request.user, dataset=dataset,
                                                        has_suggestions=True)
                        and hotpath.record_has_suggestions(record))  # (the probe only when it could show)
        else:  # suggestions off: only an admin sees them
            show = is_admin and hotpath.record_has_suggestions(record)
        if show:
            items = record.suggestions.select_related("question").order_by("question__position", "agent", "id")
            suggestions = SuggestionOutputSerializer(items, many=True).data
        else:
            suggestions = []
        submitted_count, completed = selectors.record_counts_shown(
            record=record, dataset=dataset, is_admin=is_admin, own_status=mine[0].status if mine else None)
        return ApiResponse({
            "id": record.pk, "external_id": record.external_id, "fields": record.fields,
            "metadata": selectors.record_metadata_for(record=record, dataset=dataset, user=request.user),
            **({"priority": record.priority} if is_admin else {}), "submitted_count": submitted_count,
            "completed": completed,
            "response": ResponseOutputSerializer(mine[0]).data if mine else None,
            "suggestions": suggestions,
            "display_order": display_order,
            "draft": mine[0].values if mine and mine[0].status == Response.Status.DRAFT else None,
        })


_DATETIME = serializers.DateTimeField()


# --- responses ---------------------------------------------------------------------------------

class ResponseListCreateApi(hotpath.HotPathAuthMixin, APIView):
    hotpath_object = {"POST": ("record", "record_id")}

    class InputSerializer(StrictInputSerializer):
        values = serializers.JSONField(help_text=(
            'Question name to value. Ranking: [{"value": <field>, "rank": k}, ...]; equal ranks are ties. '
            'Preference: {"preferred": <field>, "strength": <scale value>, "both_bad": bool?} or {"both_bad": true}.'))
        status = serializers.ChoiceField(choices=Response.Status.choices)
        display_order = serializers.ListField(child=serializers.CharField(), required=False)
        duration = serializers.FloatField(required=False, min_value=0)

        class Meta:
            ref_name = "ResponseUpsertInput"

        @classmethod
        def plain_validated(cls, data) -> dict | None:
            """What the serializer gives for a well-formed JSON body (every annotator's submit), without building
            it; None for any body it is not sure of (the serializer then checks that one and words the errors)."""
            if type(data) is not dict or not data.keys() <= cls._declared_fields.keys():
                return None
            values, status_, order = data.get("values"), data.get("status"), data.get("display_order", [])
            if values is None or type(status_) is not str or status_ not in Response.Status.values or type(order) is not list:
                return None
            # the names as CharField keeps them: non-blank, no surrounding space, no NUL (ASCII: no surrogates)
            if not all(type(name) is str and name and name.isascii() and name == name.strip() and "\x00" not in name
                       for name in order):
                return None
            out = {"values": values, "status": status_}
            if "display_order" in data:
                out["display_order"] = list(order)
            if "duration" in data:
                duration = data["duration"]
                if type(duration) not in (int, float):
                    return None
                try:
                    duration = float(duration)
                except OverflowError:
                    return None
                if not math.isfinite(duration) or duration < 0:
                    return None
                out["duration"] = duration
            return out

    class OutputSerializer(ResponseOutputSerializer):
        warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
        over_assigned = serializers.BooleanField(read_only=True)

        class Meta(ResponseOutputSerializer.Meta):
            ref_name = "ResponseUpsertResult"
            fields = ResponseOutputSerializer.Meta.fields + ["warnings", "over_assigned"]

    @extend_schema(responses=ResponseOutputSerializer(many=True),
                   description="All responses of the record for a workspace admin, the caller's own otherwise.")
    def get(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id)
        return ApiResponse(ResponseOutputSerializer(selectors.responses_for(record=record, user=request.user),
                                                    many=True).data)

    @extend_schema(request=InputSerializer,
                   responses={200: OutputSerializer, 201: OutputSerializer,
                              409: OpenApiResponse(description="a draft after a submit, or an answer to a record not "
                                                               "handed to the caller that has all the answers it needs")},
                   description="Create or replace the caller's response (201 created, 200 updated). A submit "
                               "beyond min_submitted is stored and flagged in `warnings`.")
    def post(self, request, record_id: int):
        record = hotpath.record_for_member(request.user, record_id, view=self)
        if record.dataset.status == Dataset.Status.ARCHIVED:
            raise DjangoValidationError({"dataset": "this dataset is archived and takes no more responses"})
        data = validated_input(self.InputSerializer, request.data)
        result = services.response_upsert(user=request.user, record=record, values=data["values"],
                                          status=data["status"], display_order=data.get("display_order"),
                                          duration=data.get("duration"))
        response = result.response
        # the same fields as OutputSerializer, built as a plain dict (the submit hot path)
        return ApiResponse({
            "id": response.pk, "record": response.record_id, "user": request.user.username,
            "values": response.values, "status": response.status, "display_order": response.display_order,
            "duration": float(response.duration), "created_at": _DATETIME.to_representation(response.created_at),
            "updated_at": _DATETIME.to_representation(response.updated_at),
            "warnings": list(result.warnings), "over_assigned": result.over_assigned,
        }, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


# --- suggestions -------------------------------------------------------------------------------

MAX_SUGGESTIONS_PER_REQUEST = 10_000


class SuggestionBulkApi(APIView):
    class ItemSerializer(serializers.Serializer):
        record = serializers.IntegerField(required=False, help_text="Record id (or give external_id)")
        external_id = serializers.CharField(required=False)
        question = serializers.CharField()
        value = serializers.JSONField()
        score = serializers.FloatField(required=False, allow_null=True)
        agent = serializers.CharField(required=False, allow_blank=True)
        rationale = serializers.CharField(required=False, allow_blank=True)
        raw = serializers.JSONField(required=False, allow_null=True)

        class Meta:
            ref_name = "SuggestionInput"

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        errors = serializers.ListField(child=inline_serializer("SuggestionError", fields={
            "index": serializers.IntegerField(), "errors": serializers.DictField()}))

        class Meta:
            ref_name = "SuggestionBulkResult"

    @extend_schema(request=ItemSerializer(many=True), responses=OutputSerializer,
                   description="Bulk add or replace suggestions (one per record, question and agent). Invalid "
                               "items are reported by index and the valid ones stored. Workspace admin.")
    def post(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        items = request.data
        if not isinstance(items, list):
            raise DjangoValidationError({"body": "must be a JSON list of suggestions"})
        if len(items) > MAX_SUGGESTIONS_PER_REQUEST:
            raise DjangoValidationError({"body": f"at most {MAX_SUGGESTIONS_PER_REQUEST} suggestions per request"})
        counts = services.suggestions_upsert(dataset=dataset, items=items)
        return ApiResponse(self.OutputSerializer(
            {"created": counts.created, "updated": counts.updated, "errors": counts.errors}).data)

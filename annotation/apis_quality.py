"""REST API of campaign quality: per-annotator quality figures and the anchoring comparison of a dataset,
and an annotator's standing on it (pause / resume, exclude from exports / include). Workspace admins only;
logic in annotation.quality (metrics, standing)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access
from .api_common import StrictInputSerializer, bool_param, validated_input
from .quality.metrics import dataset_annotator, dataset_quality_report_cached
from .quality.standing import standing_set


class DatasetQualityApi(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, parameters=[
        OpenApiParameter("competence", bool, description=(
            "false: skip the competence model (it reads every answer a second time; `competence` is then null)"))],
        description=(
        "Quality figures of the dataset's annotators (workspace admin): gold accuracy with counts and a Wilson 95% "
        "interval, submitted answers, median seconds per record, the too-fast share and flag, agreement with the "
        "majority of the other annotators (leave-one-out, Wilson 95%), competence, and standing (paused with the "
        "reason, excluded); each annotator's `kind` says human, simulated or imported and `member` whether they "
        "are still in the workspace. `anchoring` compares answers given with the judge's suggestion shown and "
        "hidden (agreement with the judge, median time with an order-statistic interval, agreement between "
        "annotators; differences with Newcombe's interval). `settings` are the dataset's quality settings and "
        "`rules` say how each figure is computed. `computed_at`: when the figures were computed; they are kept until an "
        "answer, a standing, a gold record, a suggestion, a member or a setting of the dataset changes."))
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        competence = bool_param("competence", request.query_params.get("competence"), default=True)
        return ApiResponse(dataset_quality_report_cached(dataset=dataset, competence=competence).as_dict())


class StandingOutputSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    paused = serializers.BooleanField()
    excluded = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True, help_text=(
        "The message a paused annotator sees; empty when not paused, or when the default message applies."))
    changed_by = serializers.CharField(allow_null=True, help_text="The admin who changed it last; null: a policy.")


class AnnotatorStandingApi(APIView):
    class InputSerializer(StrictInputSerializer):
        paused = serializers.BooleanField(required=False, help_text="true: hand them no more records; false: resume.")
        excluded = serializers.BooleanField(required=False, help_text=(
            "true: leave their responses out of exports (reversible, nothing is deleted); false: include them."))
        reason = serializers.CharField(required=False, allow_blank=True, max_length=300, help_text=(
            "With paused=true: the message the annotator sees (default: 'An admin of this dataset paused you.')."))

        class Meta:
            ref_name = "AnnotatorStandingInput"

        def validate(self, attrs):
            if "paused" not in attrs and "excluded" not in attrs:
                raise serializers.ValidationError({"paused": ["give paused and/or excluded"]})
            return attrs

    @extend_schema(request=InputSerializer, responses=StandingOutputSerializer, description=(
        "Pause or resume an annotator on this dataset, exclude their responses from exports or include them again "
        "(workspace admin). A user who is neither a member of the workspace nor has answered in the dataset is a "
        "404. Nothing they submitted is changed."))
    def post(self, request, dataset_id: int, user_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.ADMIN)
        user = dataset_annotator(dataset=dataset, user_id=user_id)
        data = validated_input(self.InputSerializer, request.data)
        standing = standing_set(dataset=dataset, user=user, paused=data.get("paused"), excluded=data.get("excluded"),
                                reason=data.get("reason", ""), by=request.user)
        return ApiResponse({"user_id": user.pk, "username": user.get_username(), "paused": standing.paused,
                            "excluded": standing.excluded, "reason": standing.reason,
                            "changed_by": request.user.get_username()})

"""REST API of review and adjudication: the review queue of a dataset and the review of one record.
Reviewers and admins of the workspace (access.REVIEWER); annotators 403, other workspaces 404.
Logic in annotation.quality.review."""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from . import access
from .api_common import StrictInputSerializer, validated_input
from .models import Review
from .quality import review as reviews


class ReviewOutputSerializer(serializers.ModelSerializer):
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    values = serializers.JSONField(help_text="The verdict as response values ({question name: value}); empty when "
                                             "sent back.")

    class Meta:
        model = Review
        ref_name = "Review"
        fields = ["record", "dataset", "decision", "values", "accepted_response", "reviewer", "note", "created_at",
                  "updated_at"]


class _ReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["split", "low_agreement", "judge", "gold_miss", "flag", "answered_again"])
    text = serializers.CharField()
    weight = serializers.FloatField()

    class Meta:
        ref_name = "ReviewReason"


class _QueueItemSerializer(serializers.Serializer):
    record = serializers.IntegerField(source="record_id")
    external_id = serializers.CharField()
    score = serializers.FloatField(help_text="The sum of the reasons' weights: the queue is ordered by it.")
    reasons = _ReasonSerializer(many=True)
    answers = serializers.IntegerField(help_text="Submitted answers")
    agreement = serializers.FloatField(allow_null=True, help_text="Lowest agreement over the record's questions "
                                                                  "(null: fewer than two answers)")
    sent_back = serializers.BooleanField()
    is_gold = serializers.BooleanField()

    class Meta:
        ref_name = "ReviewQueueItem"


class ReviewQueueApi(APIView):
    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField(source="total", help_text="Records in the queue (all pages)")
        page = serializers.IntegerField()
        page_size = serializers.IntegerField()
        pages = serializers.IntegerField()
        results = _QueueItemSerializer(many=True, source="items")

        class Meta:
            ref_name = "ReviewQueue"

    @extend_schema(parameters=[OpenApiParameter("page", int, description="1 = the worst records"),
                               OpenApiParameter("page_size", int, description=f"1 to {reviews.MAX_PAGE_SIZE} "
                                                                             f"(default {reviews.PAGE_SIZE})")],
                   responses=OutputSerializer,
                   description="Records that need a reviewer's decision, worst first, with the reasons (split vote, "
                               "low agreement, judge against the majority, gold misses, flags, answered again "
                               "after a send-back). Reviewers and admins.")
    def get(self, request, dataset_id: int):
        dataset = access.dataset_for_user(request.user, dataset_id, role=access.REVIEWER)
        page, page_size = reviews.page_params(request.query_params.get("page"), request.query_params.get("page_size"))
        return ApiResponse(self.OutputSerializer(reviews.review_queue(dataset, page=page, page_size=page_size)).data)


class RecordReviewApi(APIView):
    class InputSerializer(StrictInputSerializer):
        decision = serializers.ChoiceField(choices=Review.Decision.choices)
        response = serializers.IntegerField(required=False, help_text="accepted: the id of a submitted answer to "
                                                                      "this record")
        values = serializers.JSONField(required=False, help_text="own: the verdict as response values, checked as a "
                                                                 "submitted answer is")
        more = serializers.IntegerField(required=False, help_text=f"sent_back: how many more answers (1 to "
                                                                  f"{reviews.MAX_MORE}; default 1)")
        note = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

        class Meta:
            ref_name = "ReviewInput"

    NEEDS = {Review.Decision.ACCEPTED: "response", Review.Decision.OWN: "values", Review.Decision.SENT_BACK: None}

    @extend_schema(responses={200: ReviewOutputSerializer, 404: OpenApiResponse(description="no such record, or "
                                                                                             "not reviewed")},
                   description="The record's review. Reviewers and admins.")
    def get(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id, role=access.REVIEWER)
        review = reviews.review_of(record=record)
        if review is None:
            raise Http404("This record has no review.")
        return ApiResponse(ReviewOutputSerializer(review).data)

    @extend_schema(request=InputSerializer, responses=ReviewOutputSerializer,
                   description='Decide: {"decision": "accepted", "response": <id>} | {"decision": "own", "values": '
                               '{...}} | {"decision": "sent_back", "more": 1}, each with an optional "note". Replaces '
                               "the record's earlier review; the votes are never changed. Reviewers and admins.")
    def put(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id, role=access.REVIEWER)
        data = validated_input(self.InputSerializer, request.data)
        decision = data["decision"]
        needed = self.NEEDS[decision]
        for key in ("response", "values", "more"):
            if key in data and key != needed and not (key == "more" and decision == Review.Decision.SENT_BACK):
                raise DjangoValidationError({key: f"not used with decision {decision}"})
        if needed is not None and needed not in data:
            raise DjangoValidationError({needed: f"required with decision {decision}"})
        note = data.get("note", "")
        if decision == Review.Decision.ACCEPTED:
            review = reviews.review_accept(record=record, response=data["response"], reviewer=request.user, note=note)
        elif decision == Review.Decision.OWN:
            review = reviews.review_set(record=record, values=data["values"], reviewer=request.user, note=note)
        else:
            review = reviews.review_send_back(record=record, reviewer=request.user, note=note, more=data.get("more", 1))
        return ApiResponse(ReviewOutputSerializer(review).data)

    @extend_schema(responses={204: None, 404: OpenApiResponse(description="no such record, or not reviewed")},
                   description="Forget the record's review (the votes count again). Reviewers and admins.")
    def delete(self, request, record_id: int):
        record = access.record_for_user(request.user, record_id, role=access.REVIEWER)
        if not reviews.review_clear(record=record):
            raise Http404("This record has no review.")
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)

"""REST API routes of the annotation app under /api/v1/."""
from django.urls import path

from . import apis, apis_gold, apis_io, apis_quality, apis_review

urlpatterns: list = [
    # every annotator's calls first: Django tries the routes in order (none of the others matches these)
    path("datasets/<int:dataset_id>/next/", apis.NextRecordApi.as_view(), name="api-dataset-next"),
    path("records/<int:record_id>/responses/", apis.ResponseListCreateApi.as_view(), name="api-record-responses"),
    path("workspaces/", apis.WorkspaceListCreateApi.as_view(), name="api-workspaces"),
    path("workspaces/<int:workspace_id>/members/", apis.MemberListCreateApi.as_view(), name="api-members"),
    path("workspaces/<int:workspace_id>/members/<str:username>/", apis.MemberDeleteApi.as_view(),
         name="api-member-delete"),
    path("datasets/", apis.DatasetListCreateApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/publish/", apis.DatasetPublishApi.as_view(), name="api-dataset-publish"),
    path("datasets/<int:dataset_id>/records/", apis.DatasetRecordsApi.as_view(), name="api-dataset-records"),
    path("datasets/<int:dataset_id>/suggestions/", apis.SuggestionBulkApi.as_view(), name="api-dataset-suggestions"),
    path("datasets/<int:dataset_id>/quality/", apis_quality.DatasetQualityApi.as_view(), name="api-dataset-quality"),
    path("datasets/<int:dataset_id>/annotators/<int:user_id>/standing/", apis_quality.AnnotatorStandingApi.as_view(),
         name="api-annotator-standing"),
    path("records/<int:record_id>/", apis.RecordDetailApi.as_view(), name="api-record"),
    # --- review (apis_review) ---
    path("datasets/<int:dataset_id>/review-queue/", apis_review.ReviewQueueApi.as_view(), name="api-dataset-review-queue"),
    path("records/<int:record_id>/review/", apis_review.RecordReviewApi.as_view(), name="api-record-review"),
    # --- import/export (apis_io) ---
    path("datasets/<int:dataset_id>/import-pairs/", apis_io.PairsImportApi.as_view(), name="api-dataset-import-pairs"),
    path("datasets/<int:dataset_id>/triplets/", apis_io.TripletsExportApi.as_view(), name="api-dataset-triplets"),
    path("datasets/<int:dataset_id>/unpaired/", apis_io.UnpairedExportApi.as_view(), name="api-dataset-unpaired"),
    path("datasets/<int:dataset_id>/responses-export/", apis_io.ResponsesExportApi.as_view(),
         name="api-dataset-responses-export"),
    # --- end import/export ---
    # --- gold (apis_gold) ---
    path("datasets/<int:dataset_id>/gold/", apis_gold.DatasetGoldApi.as_view(), name="api-dataset-gold"),
    path("records/<int:record_id>/gold/", apis_gold.RecordGoldApi.as_view(), name="api-record-gold"),
]

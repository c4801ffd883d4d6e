"""REST routes of the evaluation side (issue #6), mounted at /api/v1/ by preflab/urls.py."""
from django.urls import path

from . import eval_apis

urlpatterns: list = [
    path("datasets/<int:dataset_id>/agreement/", eval_apis.DatasetAgreementApi.as_view(), name="api-dataset-agreement"),
    path("datasets/<int:dataset_id>/leaderboard/", eval_apis.DatasetLeaderboardApi.as_view(),
         name="api-dataset-leaderboard"),
    path("datasets/<int:dataset_id>/best-of-n/", eval_apis.BestOfNApi.as_view(), name="api-dataset-best-of-n"),
    path("datasets/<int:dataset_id>/simulate/", eval_apis.DatasetSimulateApi.as_view(), name="api-dataset-simulate"),
    path("leaderboards/alpaca-eval/", eval_apis.AlpacaEvalLeaderboardApi.as_view(), name="api-leaderboard-alpaca-eval"),
    path("workspaces/<int:workspace_id>/simulated-annotators/", eval_apis.SimulatedAnnotatorListCreateApi.as_view(),
         name="api-simulated-annotators"),
    path("workspaces/<int:workspace_id>/annotate-pairs/", eval_apis.AnnotatePairsApi.as_view(),
         name="api-annotate-pairs"),
    path("workspaces/<int:workspace_id>/annotate-samples/", eval_apis.AnnotateSamplesApi.as_view(),
         name="api-annotate-samples"),
]

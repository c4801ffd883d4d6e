"""REST routes of the evaluation side, mounted at /api/v1/ by preflab/urls.py."""
from django.urls import path

from . import apis

urlpatterns: list = [
    path("datasets/<int:dataset_id>/agreement/", apis.DatasetAgreementApi.as_view(), name="api-dataset-agreement"),
    path("datasets/<int:dataset_id>/leaderboard/", apis.DatasetLeaderboardApi.as_view(),
         name="api-dataset-leaderboard"),
    path("datasets/<int:dataset_id>/checks/", apis.DatasetChecksApi.as_view(), name="api-dataset-checks"),
    path("datasets/<int:dataset_id>/arena/", apis.DatasetArenaApi.as_view(), name="api-dataset-arena"),
    path("datasets/<int:dataset_id>/best-of-n/", apis.BestOfNApi.as_view(), name="api-dataset-best-of-n"),
    path("datasets/<int:dataset_id>/simulate/", apis.DatasetSimulateApi.as_view(), name="api-dataset-simulate"),
    path("leaderboards/alpaca-eval/", apis.AlpacaEvalLeaderboardApi.as_view(), name="api-leaderboard-alpaca-eval"),
    path("leaderboards/alpaca-eval/arena/", apis.AlpacaEvalArenaApi.as_view(), name="api-arena-alpaca-eval"),
    path("workspaces/<int:workspace_id>/simulated-annotators/", apis.SimulatedAnnotatorListCreateApi.as_view(),
         name="api-simulated-annotators"),
    path("workspaces/<int:workspace_id>/annotate-pairs/", apis.AnnotatePairsApi.as_view(),
         name="api-annotate-pairs"),
    path("workspaces/<int:workspace_id>/annotate-samples/", apis.AnnotateSamplesApi.as_view(),
         name="api-annotate-samples"),
]

"""Evaluation pages, mounted at /evaluation/ by preflab/urls.py."""
from django.urls import path

from . import views

urlpatterns: list = [
    path("", views.evaluation_home, name="evaluation-home"),
    path("datasets/<int:dataset_id>/", views.dataset_evaluation, name="evaluation-dataset"),
    path("datasets/<int:dataset_id>/simulate/", views.dataset_simulate, name="evaluation-simulate"),
    path("workspaces/<int:workspace_id>/simulated-annotators/", views.simulated_annotators_page,
         name="evaluation-simulated-annotators"),
    path("workspaces/<int:workspace_id>/simulated-annotators/<int:annotator_id>/remove/",
         views.simulated_annotator_remove, name="evaluation-simulated-annotator-remove"),
    path("alpaca-eval/", views.alpaca_eval_page, name="evaluation-alpaca-eval"),
]

"""Evaluation pages (issue #6), mounted at /evaluation/ by preflab/urls.py."""
from django.urls import path

from . import eval_views

urlpatterns: list = [
    path("", eval_views.evaluation_home, name="evaluation-home"),
    path("datasets/<int:dataset_id>/", eval_views.dataset_evaluation, name="evaluation-dataset"),
    path("datasets/<int:dataset_id>/simulate/", eval_views.dataset_simulate, name="evaluation-simulate"),
    path("alpaca-eval/", eval_views.alpaca_eval_page, name="evaluation-alpaca-eval"),
]

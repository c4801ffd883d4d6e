"""REST API routes of the annotation app under /api/v1/."""
from django.urls import path  # noqa: F401

urlpatterns: list = []

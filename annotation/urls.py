"""Browser pages (htmx). Owned by the UI work (issue #3)."""
from django.urls import path  # noqa: F401

urlpatterns: list = []

"""Browser pages of the generation app, mounted at /generation/."""
from django.urls import path

from . import views

urlpatterns: list = [
    path("", views.home, name="generation-home"),
    path("endpoints/new/", views.endpoint_create, name="generation-endpoint-create"),
    path("jobs/new/", views.job_launch, name="generation-job-launch"),
    path("jobs/<int:job_id>/", views.job_detail, name="generation-job"),
    path("jobs/<int:job_id>/progress/", views.job_progress, name="generation-job-progress"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="generation-job-cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume_view, name="generation-job-resume"),
]

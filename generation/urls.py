"""Browser pages of the generation app, mounted at /generation/."""
from django.urls import path

from annotation import views as job_views

from . import views
from .selectors import JOB_KIND as KIND

urlpatterns: list = [
    path("", views.home, name="generation-home"),
    path("endpoints/new/", views.endpoint_create, name="generation-endpoint-create"),
    path("jobs/new/", views.job_launch, name="generation-job-launch"),
    # the old job URLs of this app: the one job surface of annotation, for generation jobs only
    path("jobs/<int:job_id>/", job_views.job_detail, {"kind": KIND}, name="generation-job"),
    path("jobs/<int:job_id>/progress/", job_views.job_progress, {"kind": KIND, "detail": True},
         name="generation-job-progress"),
    path("jobs/<int:job_id>/cancel/", job_views.job_cancel_view, {"kind": KIND}, name="generation-job-cancel"),
    path("jobs/<int:job_id>/resume/", job_views.job_resume_view, {"kind": KIND}, name="generation-job-resume"),
]

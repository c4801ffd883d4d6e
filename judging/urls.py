"""Browser pages of the judging app, mounted at /judging/."""
from django.urls import path

from annotation import views as job_views

from . import views
from .selectors import JOB_KIND as KIND

urlpatterns: list = [
    path("", views.judge_list, name="judging-home"),
    path("jobs/new/", views.job_launch, name="judging-job-launch"),
    # the old job URLs of this app: the one job surface of annotation, for judge jobs only
    path("jobs/<int:job_id>/", job_views.job_detail, {"kind": KIND}, name="judging-job"),
    path("jobs/<int:job_id>/progress/", job_views.job_progress, {"kind": KIND, "detail": True},
         name="judging-job-progress"),
    path("jobs/<int:job_id>/cancel/", job_views.job_cancel_view, {"kind": KIND}, name="judging-job-cancel"),
    path("jobs/<int:job_id>/resume/", job_views.job_resume_view, {"kind": KIND}, name="judging-job-resume"),
    path("datasets/<int:dataset_id>/cleaning/", views.cleaning, name="judging-cleaning"),
    path("datasets/<int:dataset_id>/cleaning/<int:record_id>/decide/", views.flip_decide_view,
         name="judging-flip-decide"),
    path("datasets/<int:dataset_id>/cleaning/export.jsonl", views.cleaned_export, name="judging-cleaned-export"),
]

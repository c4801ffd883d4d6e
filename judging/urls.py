"""Browser pages of the judging app, mounted at /judging/."""
from django.urls import path

from . import views

urlpatterns: list = [
    path("", views.judge_list, name="judging-home"),
    path("jobs/new/", views.job_launch, name="judging-job-launch"),
    path("jobs/<int:job_id>/", views.job_detail, name="judging-job"),
    path("jobs/<int:job_id>/progress/", views.job_progress, name="judging-job-progress"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="judging-job-cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume_view, name="judging-job-resume"),
    path("datasets/<int:dataset_id>/cleaning/", views.cleaning, name="judging-cleaning"),
]

"""REST API routes of the judging app under /api/v1/."""
from django.urls import path

from . import apis

urlpatterns: list = [
    path("judges/", apis.JudgeListCreateApi.as_view(), name="api-judges"),
    path("judges/<int:judge_id>/", apis.JudgeDetailApi.as_view(), name="api-judge"),
    path("judge-jobs/", apis.JudgeJobListCreateApi.as_view(), name="api-judge-jobs"),
    path("judge-jobs/<int:job_id>/", apis.JudgeJobDetailApi.as_view(), name="api-judge-job"),
    path("judge-jobs/<int:job_id>/cancel/", apis.JudgeJobCancelApi.as_view(), name="api-judge-job-cancel"),
    path("judge-jobs/<int:job_id>/resume/", apis.JudgeJobResumeApi.as_view(), name="api-judge-job-resume"),
    path("judge-jobs/<int:job_id>/outputs/", apis.JudgeJobOutputsApi.as_view(), name="api-judge-job-outputs"),
    path("datasets/<int:dataset_id>/cleaning/", apis.CleaningFlipsApi.as_view(), name="api-dataset-cleaning"),
]

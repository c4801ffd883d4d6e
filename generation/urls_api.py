"""REST API routes of the generation app under /api/v1/."""
from django.urls import path

from . import apis

urlpatterns: list = [
    path("endpoints/", apis.EndpointListCreateApi.as_view(), name="api-endpoints"),
    path("endpoints/<int:endpoint_id>/", apis.EndpointDetailApi.as_view(), name="api-endpoint"),
    path("generation-jobs/", apis.GenerationJobListCreateApi.as_view(), name="api-generation-jobs"),
    path("generation-jobs/<int:job_id>/", apis.GenerationJobDetailApi.as_view(), name="api-generation-job"),
    path("generation-jobs/<int:job_id>/cancel/", apis.GenerationJobCancelApi.as_view(), name="api-generation-job-cancel"),
    path("generation-jobs/<int:job_id>/resume/", apis.GenerationJobResumeApi.as_view(), name="api-generation-job-resume"),
]

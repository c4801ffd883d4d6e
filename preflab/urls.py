from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves Swagger UI's init script as a file (/api/docs/?script), so the CSP needs no inline script
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
         name="api-docs"),
    path("api/v1/", include("annotation.urls_api")),
    path("api/v1/", include("generation.urls_api")),
    path("api/v1/", include("judging.urls_api")),
    path("api/v1/", include("judging.evaluation.urls_api")),
    path("generation/", include("generation.urls")),
    path("judging/", include("judging.urls")),
    path("evaluation/", include("judging.evaluation.urls")),
    path("", include("annotation.urls")),
]

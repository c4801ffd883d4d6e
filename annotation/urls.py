"""Browser pages (htmx), mounted at "/"."""
from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_gold, views_quality, views_review

urlpatterns: list = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # annotator
    path("datasets/<int:dataset_id>/annotate/", views.annotate, name="annotate"),
    path("datasets/<int:dataset_id>/records/<int:record_id>/respond/", views.record_respond, name="record-respond"),
    path("datasets/<int:dataset_id>/records/<int:record_id>/draft/", views.record_draft, name="record-draft"),
    path("datasets/<int:dataset_id>/records/<int:record_id>/undo-discard/", views.record_undo_discard,
         name="record-undo-discard"),
    path("datasets/<int:dataset_id>/history/", views.history, name="history"),
    path("datasets/<int:dataset_id>/history/<int:record_id>/", views.history_record, name="history-record"),
    # reviewer (and admin)
    path("datasets/<int:dataset_id>/review/", views_review.review_queue_view, name="review-queue"),
    path("datasets/<int:dataset_id>/review/<int:record_id>/", views_review.review_record_view, name="review-record"),
    # admin
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/new/", views.dataset_create_view, name="dataset-create"),
    path("datasets/<int:dataset_id>/", views.dashboard, name="dashboard"),
    path("datasets/<int:dataset_id>/dashboard/stats/", views.dashboard_stats, name="dashboard-stats"),
    path("datasets/<int:dataset_id>/records/<int:record_id>/", views.record_detail, name="record-detail"),
    path("datasets/<int:dataset_id>/records/<int:record_id>/gold/", views_gold.record_gold_view, name="record-gold"),
    path("datasets/<int:dataset_id>/publish/", views.dataset_publish_view, name="dataset-publish"),
    path("datasets/<int:dataset_id>/settings/", views.dataset_settings_view, name="dataset-settings"),
    path("datasets/<int:dataset_id>/status/", views.dataset_status_view, name="dataset-status"),
    path("datasets/<int:dataset_id>/delete/", views.dataset_delete_view, name="dataset-delete"),
    path("datasets/<int:dataset_id>/import/", views.dataset_import, name="dataset-import"),
    path("datasets/<int:dataset_id>/import/preview/", views.dataset_import_preview, name="dataset-import-preview"),
    path("datasets/<int:dataset_id>/export/", views.dataset_export, name="dataset-export"),
    path("datasets/<int:dataset_id>/dashboard/quality/", views_quality.dashboard_quality_summary,
         name="dashboard-quality"),
    path("datasets/<int:dataset_id>/quality/", views_quality.dataset_quality_page, name="dataset-quality"),
    path("datasets/<int:dataset_id>/quality/annotators/<int:user_id>/standing/", views_quality.annotator_standing_view,
         name="dataset-quality-standing"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<int:job_id>/download/", views.job_download, name="job-download"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="job-cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume_view, name="job-resume"),
    path("jobs/<int:job_id>/retry/", views.job_retry_view, name="job-retry"),
    path("account/", views.account, name="account"),
    path("account/invitations/<int:invitation_id>/<str:action>/", views.invitation_answer_view,
         name="invitation-answer"),
    path("workspaces/", views.workspace_list, name="workspace-list"),
    path("workspaces/<int:workspace_id>/members/", views.members, name="members"),
    path("workspaces/<int:workspace_id>/members/<int:user_id>/remove/", views.member_remove_view,
         name="member-remove"),
]

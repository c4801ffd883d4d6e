from django.apps import AppConfig


class JudgingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "judging"
    verbose_name = "Judging"

    def ready(self):
        from annotation.jobs import job_handler_register

        from .services import JudgeJobHandler

        job_handler_register(JudgeJobHandler())
        from .evaluation import simulation  # noqa: F401  registers the "simulation" job handler

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        from annotation.jobs import job_handler_register

        from .services import GenerationJobHandler

        job_handler_register(GenerationJobHandler())

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        from annotation.jobs import job_handler_register_lazy

        # imported when a generation job first needs it (a process running other kinds does not load it)
        job_handler_register_lazy(kind="generation", path="generation.services.handler.GenerationJobHandler")

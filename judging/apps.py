from django.apps import AppConfig


class JudgingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "judging"
    verbose_name = "Judging"

    def ready(self):
        from annotation.jobs import job_handler_register_lazy

        # imported when a job of the kind first needs them (a process running one kind loads only its own)
        job_handler_register_lazy(kind="judge", path="judging.services.handler.JudgeJobHandler")
        job_handler_register_lazy(kind="simulation", path="judging.evaluation.simulation.SimulationJobHandler")

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"
    verbose_name = "Annotation"

    def ready(self):
        from .jobs import job_handler_register_lazy

        # annotation.job_kinds registers these three when imported, the first time a job of one of them
        # needs its handler (a process running other kinds does not load the import and export code)
        for kind, cls in (("import", "ImportJobHandler"), ("dataset_delete", "DatasetDeleteJobHandler"),
                          ("export", "ExportJobHandler")):
            job_handler_register_lazy(kind=kind, path=f"annotation.job_kinds.{cls}")

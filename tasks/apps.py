from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self):
        # The kind modules call into the pipeline (runs), so they load once every model has: see
        # tasks/source_kinds/__init__.py. Loading them at start shows a broken kind module at once.
        from tasks import source_kinds

        source_kinds.autodiscover()

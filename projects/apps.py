from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"

    def ready(self):
        from projects import scheduling

        scheduling.connect_signals()
        from django_q.signals import post_spawn

        from projects import housekeeping

        post_spawn.connect(housekeeping.start_heartbeat, dispatch_uid="etl-worker-heartbeat")

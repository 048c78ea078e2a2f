from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self):
        # Imported here, as Django asks of ready(): the modules need every app loaded first.
        from django_q.signals import post_spawn

        from runs import shutdown

        # A worker that gets SIGTERM finishes or hands back its run (runs/shutdown.py).
        post_spawn.connect(shutdown.install, dispatch_uid="etl-graceful-shutdown")

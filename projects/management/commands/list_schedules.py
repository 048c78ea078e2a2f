from django.core.management.base import BaseCommand

from projects import scheduling, triggers
from projects.models import Trigger


class Command(BaseCommand):
    help = ("List every trigger (projects and system jobs) with its next run times in its time zone, showing the "
            "UTC offset so daylight-saving changes are visible, then the other django-q2 schedules.")

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=3, help="Next run times per trigger (default 3).")
        parser.add_argument("--project", type=int, help="Only this project's triggers (its id).")

    def handle(self, count, project=None, **options):
        from django_q.models import Schedule

        queryset = Trigger.objects.select_related("project", "system_job").order_by("project__name", "id")
        if project:
            queryset = queryset.filter(project_id=project)
        for trigger in queryset:
            owner = (f"project {trigger.project.name}" if trigger.project_id
                     else f"system job {trigger.system_job.name}"
                     f"{'' if trigger.system_job.active else ' (inactive)'}")
            disabled = "" if trigger.enabled and (not trigger.project_id or trigger.project.enabled) else " [off]"
            self.stdout.write(f"trigger {trigger.pk} - {owner} - {triggers.describe(trigger)} "
                              f"({triggers.zone_of(trigger).key}){disabled}")
            rows = scheduling.upcoming(trigger, count) if trigger.enabled else []
            for row in rows:
                change = f"  <- clocks change from {row['previous_offset']}" if row["changed"] else ""
                self.stdout.write(f"    {row['local']:%a %Y-%m-%d %H:%M:%S} {row['abbreviation']} "
                                  f"({row['offset']}){change}")
            if trigger.enabled and not rows:
                self.stdout.write("    no run time left")
        others = Schedule.objects.exclude(name__startswith=scheduling.TRIGGER_PREFIX).order_by("next_run")
        if project:
            return
        for schedule in others:
            self.stdout.write(f"schedule {schedule.name or schedule.pk}: {schedule.func} next "
                              f"{schedule.next_run:%Y-%m-%d %H:%M:%S} UTC")

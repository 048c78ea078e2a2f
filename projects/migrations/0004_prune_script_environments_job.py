"""A default job that removes Python script environments no run has used for 30 days (daily, 04:30 UTC)."""
from django.db import migrations
from django.utils import timezone

NAME = "Remove unused script environments"


def create_job(apps, schema_editor):
    SystemJob = apps.get_model("projects", "SystemJob")
    Trigger = apps.get_model("projects", "Trigger")
    Schedule = apps.get_model("django_q", "Schedule")
    job, created = SystemJob.objects.get_or_create(
        name=NAME, defaults={"function": "prune_script_environments", "kwargs": {"days": 30}, "active": True,
                             "time_zone": "UTC"})
    if not created:
        return
    trigger = Trigger.objects.create(system_job=job, kind="cron", hour="4", minute="30")
    # Due now: its first call only computes the trigger's next time (see 0003).
    Schedule.objects.update_or_create(
        name=f"etl:trigger:{trigger.pk}",
        defaults={"func": "projects.scheduling.fire_trigger", "args": str(trigger.pk), "schedule_type": "I",
                  "minutes": 1, "repeats": -1, "next_run": timezone.now()})


def remove_job(apps, schema_editor):
    SystemJob = apps.get_model("projects", "SystemJob")
    Trigger = apps.get_model("projects", "Trigger")
    Schedule = apps.get_model("django_q", "Schedule")
    jobs = SystemJob.objects.filter(name=NAME)
    triggers = Trigger.objects.filter(system_job__in=jobs).values_list("pk", flat=True)
    Schedule.objects.filter(name__in=[f"etl:trigger:{pk}" for pk in triggers]).delete()
    jobs.delete()


class Migration(migrations.Migration):
    dependencies = [("projects", "0003_default_system_jobs")]
    operations = [migrations.RunPython(create_job, remove_job)]

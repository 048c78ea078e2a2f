"""A default job that reminds organization admins of expiring passwords, keys and certificates (daily, 07:00 UTC)."""
from django.db import migrations
from django.utils import timezone

NAME = "Remind of expiring credentials"


def create_job(apps, schema_editor):
    SystemJob = apps.get_model("projects", "SystemJob")
    Trigger = apps.get_model("projects", "Trigger")
    Schedule = apps.get_model("django_q", "Schedule")
    job, created = SystemJob.objects.get_or_create(
        name=NAME, defaults={"function": "remind_expiring_credentials", "active": True, "time_zone": "UTC"})
    if not created:
        return
    trigger = Trigger.objects.create(system_job=job, kind="cron", hour="7", minute="0")
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
    dependencies = [("projects", "0007_leader_lease"), ("django_q", "0001_initial")]
    operations = [migrations.RunPython(create_job, remove_job)]

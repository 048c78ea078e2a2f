"""The portal's default housekeeping jobs, each with its trigger and django-q2 Schedule.

The Schedule starts due now: its first call only computes the trigger's next time (nothing runs early).
"Prune old run logs" starts inactive: visible in the admin, switched on by an operator.
"""
from django.db import migrations
from django.utils import timezone

DEFAULTS = [
    # name, function, kwargs, active, trigger fields
    ("Purge expired output files", "purge_expired_files", {}, True,
     {"kind": "cron", "hour": "3", "minute": "15"}),
    ("Clean orphan schedules", "clean_orphan_schedules", {}, True,
     {"kind": "interval", "every": 15, "unit": "minutes"}),
    ("Test every connection", "test_connections", {}, True,
     {"kind": "cron", "hour": "2", "minute": "0"}),
    ("Prune old run logs", "prune_run_logs", {"days": 180}, False,
     {"kind": "cron", "day_of_week": "sun", "hour": "4", "minute": "0"}),
]


def create_defaults(apps, schema_editor):
    SystemJob = apps.get_model("projects", "SystemJob")
    Trigger = apps.get_model("projects", "Trigger")
    Schedule = apps.get_model("django_q", "Schedule")
    for name, function, kwargs, active, trigger_fields in DEFAULTS:
        job, created = SystemJob.objects.get_or_create(
            name=name, defaults={"function": function, "kwargs": kwargs, "active": active, "time_zone": "UTC"})
        if not created:
            continue
        trigger = Trigger.objects.create(system_job=job, **trigger_fields)
        Schedule.objects.update_or_create(
            name=f"etl:trigger:{trigger.pk}",
            defaults={"func": "projects.scheduling.fire_trigger", "args": str(trigger.pk), "schedule_type": "I",
                      "minutes": 1, "repeats": -1, "next_run": timezone.now()})


def remove_defaults(apps, schema_editor):
    SystemJob = apps.get_model("projects", "SystemJob")
    Schedule = apps.get_model("django_q", "Schedule")
    jobs = SystemJob.objects.filter(name__in=[name for name, *_ in DEFAULTS])
    Schedule.objects.filter(name__in=[f"etl:trigger:{pk}" for pk in
                                      apps.get_model("projects", "Trigger").objects.filter(
                                          system_job__in=jobs).values_list("pk", flat=True)]).delete()
    jobs.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]

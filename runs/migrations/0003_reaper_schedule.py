from django.db import migrations


def create_reaper(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="etl: fail runs whose worker died",
        defaults={"func": "runs.execution.reap_interrupted_runs", "schedule_type": "I", "minutes": 1,
                  "repeats": -1},
    )


def remove_reaper(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="etl: fail runs whose worker died").delete()


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create_reaper, remove_reaper)]

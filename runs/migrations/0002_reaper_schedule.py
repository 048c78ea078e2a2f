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
    dependencies = [("runs", "0001_initial"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_reaper, remove_reaper)]

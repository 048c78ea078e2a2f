"""Fill RunFile.shown_name and each delivery's shown_path for files recorded before they existed.

Pages show these masked names (runs/masking.py); without this, a file recorded before would show its
real name, secrets and all. Masked with the secrets as they are when the migration runs.
"""
from django.db import migrations


def shown_record(record, masker):
    """As RunFile.shown_record: `shown_path` only where masking changes the path."""
    if "shown_path" in record or masker(record.get("path", "")) == record.get("path", ""):
        return record
    return {**record, "shown_path": masker(record.get("path", ""))}


def mask_recorded_names(apps, schema_editor):
    from runs.masking import Masker, secret_values

    RunFile = apps.get_model("runs", "RunFile")
    Task = apps.get_model("tasks", "Task")
    task_ids = RunFile.objects.filter(shown_name="").values_list("run__task_id", flat=True).distinct()
    for task in Task.objects.filter(pk__in=list(task_ids)).select_related("project"):
        masker = Masker(secret_values(task))
        for run_file in RunFile.objects.filter(run__task=task, shown_name="").iterator():
            run_file.shown_name = masker(run_file.name)
            run_file.deliveries = [shown_record(record, masker) for record in run_file.deliveries or []]
            run_file.save(update_fields=["shown_name", "deliveries"])


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0004_runfile_shown_name"),
        ("tasks", "0001_initial"),
        ("projects", "0004_prune_script_environments_job"),
        ("connections", "0002_initial"),
    ]

    operations = [
        migrations.RunPython(mask_recorded_names, migrations.RunPython.noop),
    ]

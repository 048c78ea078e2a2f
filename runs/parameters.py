"""Parameters: project and task key/values, and the date expressions users write in names and queries."""


def resolve(task, run):
    """Every parameter for this run: project values overridden by the task's."""
    values = {}
    if task.project_id:
        values.update({p.key: p.value for p in task.project.parameters.all()})
    values.update({p.key: p.value for p in task.parameters.all()})
    return values


def sensitive_values(task):
    from projects.models import Parameter

    return [p.value for p in Parameter.objects.filter(sensitive=True).filter(task=task)
            | Parameter.objects.filter(sensitive=True, project=task.project_id) if p.value]


def render(text, params):
    """Put parameters into `text` (file names, queries, subjects)."""
    return text or ""

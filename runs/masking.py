"""Which values a run must hide: every secret a run of a task can meet, the sensitive parameter values (project
and task) and the secrets of every connection the task uses (source, text, processing, GPG key, conditions,
destinations, the mail connections of its notifications). How they are hidden, and why so, is
etl_portal/masking.py (`Masker`); `run.masker` is the Masker of a run's task.
"""
from connections.protocols import MAIL, registry
from etl_portal.masking import Masker
from runs.parameters import sensitive_values


def mask(text, task=None, values=()):
    """One-off masking: `text` with the secrets of `task` (if given) and `values` replaced by ********."""
    return Masker(list(values or ()) + (secret_values(task) if task is not None else []))(text)


def sensitive_parameter_values(task):
    return sensitive_values(task)


def _connection_lists(task):
    """Functions, each giving some of the connections a run of `task` may open or hand to a script.

    Only fields and relations are used, no model methods, so the data migration that masks older file
    names (runs 0005) can pass its historical models.
    """
    Connection = task._meta.apps.get_model("connections", "Connection")

    def notification_connections():
        notifications = list(task.notifications.select_related("smtp_connection"))
        found = [notification.smtp_connection for notification in notifications]
        if any(notification.smtp_connection_id is None for notification in notifications):
            # Such an email goes through the organization's one mail connection (runs.notifications.mailer_for).
            found += list(Connection.objects.filter(organization=task.project.organization_id,
                                                    kind__in=registry.kinds_with(MAIL)))
        return found

    yield lambda: [task.source_connection]
    yield lambda: [task.text_connection]
    yield lambda: [task.processing_connection]
    yield lambda: [task.gpg_key]
    if task.pk:
        yield lambda: [destination.connection for destination in task.destinations.select_related("connection")]
        yield lambda: [condition.connection for condition in task.conditions.select_related("connection")]
        yield notification_connections
    if hasattr(task, "effective_settings") and task.project_id:  # not a historical model of a data migration
        # The shared settings' connections (a default destination, the outcome mailboxes' mail connections),
        # wherever their level sets them.
        yield lambda: [item.value for item in task.effective_settings().values() if item.setting.is_connection]


def _gathered(part):
    # A secret that cannot be decrypted with the configured keys cannot reach any text either: skip it
    # rather than fail, so a run with such a connection still logs why it failed.
    try:
        return list(part())
    except ValueError:
        return []


def task_connections(task):
    """Every connection a run of `task` may open or hand to a script, once each."""
    unique = {}
    for part in _connection_lists(task):
        for connection in _gathered(part):
            if connection is not None:
                unique.setdefault(connection.pk or id(connection), connection)
    return list(unique.values())


def secret_values(task):
    """Every secret value a run of `task` could meet: connection secrets and sensitive parameter values."""
    values = []
    for connection in task_connections(task):
        values.extend(_gathered(lambda: [value for value in (connection.secrets or {}).values() if value]))
    return values + _gathered(lambda: sensitive_parameter_values(task))

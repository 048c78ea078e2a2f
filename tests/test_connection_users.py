"""A connection used by a task in any role (not only as source or destination) is listed and kept on delete."""
import pytest
from django.urls import reverse

from connections.models import Connection
from tasks.models import Condition, Notification
from tests.fixtures.pages import SOURCE_QUERY
from tests.test_connection_pages import page_text

pytestmark = pytest.mark.django_db


def as_gpg_key(task, connection):
    task.gpg_key = connection
    task.save()


def as_text_location(task, connection):
    task.text_location, task.text_connection, task.text_path = "remote", connection, "people.sql"
    task.save()


def as_processing_script(task, connection):
    task.processing_location, task.processing_connection, task.processing_path = "remote", connection, "fix.py"
    task.save()


def as_condition(task, connection):
    Condition.objects.create(task=task, kind=Condition.Kind.QUERY_VALUE, connection=connection,
                             query="SELECT 1", operator="=", value="1")


def as_mail_server(task, connection):
    Notification.objects.create(task=task, event="error", smtp_connection=connection, recipients="ops@example.com")


@pytest.mark.parametrize("kind, use", [
    ("gpg", as_gpg_key), ("sftp", as_text_location), ("sftp", as_processing_script), ("sqlite", as_condition),
    ("smtp", as_mail_server),
], ids=["gpg key", "text", "processing", "condition", "smtp"])
def test_a_connection_used_in_one_role_only_is_listed_and_not_deleted(client_of, org_admin, organization, sqlite_people,
                                                                     make_task, kind, use):
    connection = Connection.objects.create(organization=organization, name="Only here", kind=kind)
    task = make_task(sqlite_people, SOURCE_QUERY, name="Monthly partner export")
    use(task, connection)
    client = client_of(org_admin)
    url = reverse("connections:delete", args=[connection.pk])

    assert list(connection.users()) == [task]
    confirm = page_text(client.get(url))
    assert "Only here cannot be deleted while these tasks use it" in confirm and "No task uses it" not in confirm
    assert "Monthly partner export (Vendor feeds)" in confirm
    refused = client.post(url)
    assert refused.status_code == 409 and "Monthly partner export" in page_text(refused)
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert "Monthly partner export" in page_text(client.get(reverse("connections:detail", args=[connection.pk])))


def test_every_foreign_key_to_a_connection_is_followed(organization, sqlite_people, make_task):
    """One task using one connection through every relation there is: listed once."""
    connection = Connection.objects.create(organization=organization, name="Everywhere", kind="sqlite")
    task = make_task(connection, SOURCE_QUERY, destinations=[(connection, "")], name="All roles")
    for use in (as_gpg_key, as_text_location, as_processing_script, as_condition, as_mail_server):
        use(task, connection)
    other = make_task(sqlite_people, SOURCE_QUERY, name="Unrelated")

    relations = {relation.get_accessor_name() for relation in Connection._meta.related_objects}
    assert relations >= {"source_tasks", "text_tasks", "processing_tasks", "gpg_tasks", "destinations",
                         "condition_tasks", "notification_tasks"}
    assert list(connection.users()) == [task]
    assert list(sqlite_people.users()) == [other]

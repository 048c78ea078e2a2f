"""The analysts' connection pages, driven through the Django test client against real servers."""
import re

import pytest
from django.db import connection as db
from django.urls import reverse

from connections.models import Connection
from projects.models import Organization
from tests.fixtures.pages import SOURCE_QUERY

pytestmark = pytest.mark.django_db

PASSWORD = "S3cret-form-pass!"


def raw_secrets_column(connection_id):
    with db.cursor() as cursor:
        cursor.execute("SELECT secrets FROM connections_connection WHERE id = %s", [connection_id])
        return cursor.fetchone()[0]


def sftp_form(organization, **fields):
    data = {"organization": organization.pk, "name": "Vendor drop", "kind": "sftp", "host": "127.0.0.1",
            "port": "2222", "username": "vendor", "password": PASSWORD}
    data.update(fields)
    return data


def page_text(response):
    """The visible text of a page, whitespace collapsed, to assert what a user reads."""
    text = re.sub(r"<script.*?</script>|<[^>]+>", " ", response.content.decode(), flags=re.S)
    return " ".join(text.split())


def test_an_sftp_connection_is_created_with_its_password_encrypted_and_never_shown(client_of, org_admin, organization):
    client = client_of(org_admin)

    response = client.post(reverse("connections:new"), sftp_form(organization))

    connection = Connection.objects.get(name="Vendor drop")
    assert response.status_code == 302 and response.url == reverse("connections:detail", args=[connection.pk])
    assert (connection.kind, connection.host, connection.port, connection.username) == ("sftp", "127.0.0.1", 2222,
                                                                                       "vendor")
    assert connection.secrets == {"password": PASSWORD}
    stored = raw_secrets_column(connection.pk)
    assert stored and PASSWORD not in stored
    edit_page = client.get(reverse("connections:edit", args=[connection.pk]))
    assert edit_page.status_code == 200
    assert PASSWORD not in edit_page.content.decode()
    assert "Password (stored)" in page_text(edit_page)
    assert "Leave blank to keep the stored value" in page_text(edit_page)
    detail = client.get(reverse("connections:detail", args=[connection.pk]))
    assert PASSWORD not in detail.content.decode()
    assert "Password stored" in page_text(detail)


def test_a_blank_password_keeps_the_stored_one_and_clear_removes_it(client_of, org_admin, organization):
    client = client_of(org_admin)
    client.post(reverse("connections:new"), sftp_form(organization))
    connection = Connection.objects.get(name="Vendor drop")
    edit_url = reverse("connections:edit", args=[connection.pk])

    # A change that leaves the address alone keeps it (a new user name or host drops it instead:
    # tests/test_connection_secrets_drop.py).
    client.post(edit_url, sftp_form(organization, password="", description="Drop for the vendor"))
    connection.refresh_from_db()
    assert connection.description == "Drop for the vendor" and connection.secret("password") == PASSWORD

    client.post(edit_url, sftp_form(organization, password="", clear_password="on"))
    connection.refresh_from_db()
    assert connection.secrets == {}
    assert raw_secrets_column(connection.pk) == ""
    assert "Password (stored)" not in page_text(client.get(edit_url))


def test_fields_of_another_kind_are_not_saved(client_of, org_admin, organization):
    client = client_of(org_admin)

    client.post(reverse("connections:new"), sftp_form(organization, database="warehouse", token="tok-123456",
                                                     sslmode="require", query_timeout="30", public_key="junk"))

    connection = Connection.objects.get(name="Vendor drop")
    assert connection.database == ""
    assert connection.options == {}
    assert set(connection.secrets) == {"password"}


def test_a_blank_port_gets_the_kind_default_and_a_missing_host_is_refused(client_of, org_admin, organization):
    client = client_of(org_admin)

    client.post(reverse("connections:new"), sftp_form(organization, port=""))
    assert Connection.objects.get(name="Vendor drop").port == 22
    response = client.post(reverse("connections:new"), sftp_form(organization, name="No host", host=""))
    assert response.status_code == 200 and "This field is required" in page_text(response)
    assert not Connection.objects.filter(name="No host").exists()


def test_the_form_offers_every_kind_and_marks_fields_with_the_kinds_that_use_them(client_of, org_admin):
    page = client_of(org_admin).get(reverse("connections:new")).content.decode()

    from connections.protocols import registry
    for kind in registry.all_kinds():
        assert f'value="{kind}"' in page
    host_kinds = re.search(r'data-kinds="([^"]*)"[^>]*>\s*<div[^>]*id="div_id_host"', page).group(1).split()
    assert {"sftp", "postgresql"} <= set(host_kinds) and "sqlite" not in host_kinds
    assert "js/connection-form.js" in page


def test_the_organization_choice_is_limited_to_the_users_organizations(client_of, org_admin, organization):
    other = Organization.objects.create(name="Other Corp")
    page = client_of(org_admin).get(reverse("connections:new")).content.decode()
    assert "Acme Analytics" in page and "Other Corp" not in page

    response = client_of(org_admin).post(reverse("connections:new"), sftp_form(other))
    assert response.status_code == 200 and "Select a valid choice" in page_text(response)


def gpg_form(organization, key):
    return {"organization": organization.pk, "name": "Partner key", "kind": "gpg", "public_key": key}


@pytest.mark.parametrize("which, reason", [
    ("expired_public", "expired"), ("secret", "This is a private key"), ("", "No public key")])
def test_an_unusable_gpg_key_is_refused_next_to_its_field(client_of, org_admin, organization, gpg_keys, which, reason):
    response = client_of(org_admin).post(reverse("connections:new"),
                                     gpg_form(organization, getattr(gpg_keys, which) if which else ""))

    assert response.status_code == 200
    assert not Connection.objects.filter(name="Partner key").exists()
    field = re.search(r'id="div_id_public_key".*?</textarea>\s*(<div[^>]*invalid-feedback.*?</div>)',
                      response.content.decode(), flags=re.S)
    assert field and reason.lower() in field.group(1).lower()


def test_a_usable_gpg_key_is_saved(client_of, org_admin, organization, gpg_keys):
    client_of(org_admin).post(reverse("connections:new"), gpg_form(organization, gpg_keys.public))

    assert Connection.objects.get(name="Partner key").options == {"public_key": gpg_keys.public.strip()}


# test_connection runs in a worker thread that pins the host key: it must see committed rows and may write.
@pytest.mark.django_db(transaction=True)
def test_the_test_button_reports_success_against_the_real_sshd(client_of, org_admin, sftp_connection):
    client = client_of(org_admin)
    url = reverse("connections:test", args=[sftp_connection.pk])

    in_place = client.post(url, headers={"X-Requested-With": "fetch"})
    assert in_place.status_code == 200
    assert 'class="alert alert-success' in in_place.content.decode()
    assert "Connected;" in page_text(in_place)

    whole_page = client.post(url)
    assert "Connected;" in page_text(whole_page) and "alert-success" in whole_page.content.decode()
    sftp_connection.refresh_from_db()
    assert sftp_connection.last_test_ok is True and sftp_connection.host_key
    detail = client.get(reverse("connections:detail", args=[sftp_connection.pk]))
    assert "Pinned host key" in page_text(detail) and "ssh-ed25519 SHA256:" in page_text(detail)


def test_the_test_button_shows_the_failed_step_for_a_closed_port(client_of, org_admin, organization, closed_port):
    connection = Connection.objects.create(organization=organization, name="Nobody home", kind="sftp",
                                           host="127.0.0.1", port=closed_port, username="x",
                                           secrets={"password": "x"})

    response = client_of(org_admin).post(reverse("connections:test", args=[connection.pk]),
                                     headers={"X-Requested-With": "fetch"})

    assert "alert-danger" in response.content.decode()
    assert f"Refused failed: Connection refused by 127.0.0.1:{closed_port}" in page_text(response)
    listing = client_of(org_admin).get(reverse("connections:list"))
    assert "Failed" in page_text(listing) and "Refused failed:" in page_text(listing)


def test_forget_host_key_unpins_it(client_of, org_admin, sftp_connection):
    Connection.objects.filter(pk=sftp_connection.pk).update(host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==")

    response = client_of(org_admin).post(reverse("connections:forget-host-key", args=[sftp_connection.pk]), follow=True)

    sftp_connection.refresh_from_db()
    assert sftp_connection.host_key == ""
    assert "The pinned host key is forgotten" in page_text(response)


def test_delete_is_refused_while_a_task_uses_the_connection(client_of, org_admin, sftp_connection, sqlite_people,
                                                             make_task):
    task = make_task(sqlite_people, SOURCE_QUERY, [(sftp_connection, "in")], name="Nightly people export")
    client = client_of(org_admin)
    url = reverse("connections:delete", args=[sftp_connection.pk])

    confirm = client.get(url)
    assert "cannot be deleted while these tasks use it" in page_text(confirm)
    assert f'href="{reverse("tasks:detail", args=[task.pk])}"' in confirm.content.decode()
    assert "Nightly people export" in page_text(confirm)
    refused = client.post(url)
    assert refused.status_code == 409 and "Nightly people export" in page_text(refused)
    assert Connection.objects.filter(pk=sftp_connection.pk).exists()
    detail = client.get(reverse("connections:detail", args=[sqlite_people.pk]))
    assert "Nightly people export" in page_text(detail)


def test_an_unused_connection_is_deleted_after_confirmation(client_of, org_admin, sqlite_people):
    client = client_of(org_admin)
    url = reverse("connections:delete", args=[sqlite_people.pk])

    assert "No task uses it" in page_text(client.get(url))
    response = client.post(url, follow=True)

    assert not Connection.objects.filter(pk=sqlite_people.pk).exists()
    assert "Connection People DB is deleted." in page_text(response)


def test_an_outsider_neither_sees_nor_reaches_a_connection(client_of, outsider, sqlite_people):
    client = client_of(outsider)

    assert "People DB" not in page_text(client.get(reverse("connections:list")))
    for name in ("connections:detail", "connections:edit", "connections:delete"):
        assert client.get(reverse(name, args=[sqlite_people.pk])).status_code == 404
    for name in ("connections:test", "connections:forget-host-key", "connections:delete"):
        assert client.post(reverse(name, args=[sqlite_people.pk])).status_code == 404
    assert Connection.objects.filter(pk=sqlite_people.pk).exists()


def test_members_see_their_organizations_connections_and_staff_see_all(client_of, member, staff, sqlite_people):
    other = Organization.objects.create(name="Other Corp")
    Connection.objects.create(organization=other, name="Their files", kind="local", path="/tmp")

    member_list = page_text(client_of(member).get(reverse("connections:list")))
    assert "People DB" in member_list and "Their files" not in member_list
    staff_list = page_text(client_of(staff).get(reverse("connections:list")))
    assert "People DB" in staff_list and "Their files" in staff_list and "Other Corp" in staff_list


def test_pages_need_a_login(client, sqlite_people):
    response = client.get(reverse("connections:detail", args=[sqlite_people.pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.django_db(transaction=True)
def test_the_admin_action_tests_each_selected_connection(client_of, staff, sftp_connection, organization,
                                                         closed_port):
    closed = Connection.objects.create(organization=organization, name="Closed door", kind="sftp",
                                       host="127.0.0.1", port=closed_port, username="x")

    response = client_of(staff).post(reverse("admin:connections_connection_changelist"), {
        "action": "test_connections", "_selected_action": [sftp_connection.pk, closed.pk]}, follow=True)

    text = page_text(response)
    assert "Vendor SFTP (SFTP): Connected;" in text
    assert f"Closed door (SFTP): Refused failed: Connection refused by 127.0.0.1:{closed_port}" in text


def test_the_admin_form_keeps_secrets_write_only(client_of, staff, sftp_connection, sshd):
    client = client_of(staff)
    url = reverse("admin:connections_connection_change", args=[sftp_connection.pk])

    page = client.get(url).content.decode()
    assert sshd.password not in page and 'data-kinds="' in page

    fields = {"organization": sftp_connection.organization.pk, "name": "Vendor SFTP", "kind": "sftp",
              "host": sshd.host, "port": sshd.port, "username": sshd.username, "password": "", "host_key": ""}
    response = client.post(url, {**fields, "description": "renamed"})
    assert response.status_code == 302, page_text(response)[:2000]
    sftp_connection.refresh_from_db()
    assert sftp_connection.description == "renamed" and sftp_connection.secret("password") == sshd.password
    # Pointing it at another user without the password again drops it, as on the page.
    assert client.post(url, {**fields, "username": "renamed"}).status_code == 302
    sftp_connection.refresh_from_db()
    assert sftp_connection.username == "renamed" and sftp_connection.secret("password") == ""


def test_the_odbc_fast_csv_option_shows_its_default_and_can_be_turned_off(client_of, org_admin, organization):
    client = client_of(org_admin)
    saved_before = Connection.objects.create(organization=organization, name="Old ODBC", kind="odbc",
                                             options={"driver": "PostgreSQL Unicode"})
    assert "Fast CSV extracts yes" in page_text(client.get(reverse("connections:detail", args=[saved_before.pk])))
    edit_page = client.get(reverse("connections:edit", args=[saved_before.pk]))
    assert re.search(r'<input[^>]*name="fast_csv"[^>]*checked', edit_page.content.decode())

    # An unticked checkbox is absent from the POST data.
    client.post(reverse("connections:new"), {"organization": organization.pk, "name": "Row by row", "kind": "odbc",
                                            "host": "127.0.0.1", "driver": "PostgreSQL Unicode"})
    connection = Connection.objects.get(name="Row by row")
    assert connection.options["fast_csv"] is False
    assert "Fast CSV extracts no" in page_text(client.get(reverse("connections:detail", args=[connection.pk])))

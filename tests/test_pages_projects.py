"""Projects pages: list, details with triggers and run order, the form with triggers validated in place."""
import pytest

from projects.models import Project, Trigger
from tasks.models import Task

pytestmark = pytest.mark.django_db


def project_form_data(organization, owner, **trigger):
    data = {"organization": organization.pk, "name": "Nightly", "owner": owner.pk, "enabled": "on",
            "mode": "series", "max_parallel": 4, "time_zone": "America/New_York", "missed_runs": "run_once",
            "triggers-TOTAL_FORMS": 1, "triggers-INITIAL_FORMS": 0,
            "parameters-TOTAL_FORMS": 0, "parameters-INITIAL_FORMS": 0}
    data.update({f"triggers-0-{key}": value for key, value in trigger.items()})
    return data


def test_project_form_refuses_a_bad_trigger_next_to_the_field(client, owner, organization):
    client.force_login(owner)
    page = client.post("/projects/new/", project_form_data(organization, owner, kind="cron", enabled="on",
                                                           hour="25", minute="30", jitter_seconds=0)).content.decode()
    assert not Project.objects.filter(name="Nightly").exists()
    assert 'id="error_1_id_triggers-0-hour"' in page


def test_project_form_saves_triggers_and_details_show_next_runs(client, owner, organization):
    client.force_login(owner)
    response = client.post("/projects/new/", project_form_data(organization, owner, kind="cron", enabled="on",
                                                               hour="2", minute="30", jitter_seconds=0))
    project = Project.objects.get(name="Nightly")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/"
    trigger = Trigger.objects.get(project=project)
    assert trigger.next_run_at is not None
    Task.objects.create(project=project, name="Second", run_rank=2)
    Task.objects.create(project=project, name="First", run_rank=1)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert page.index(">First<") < page.index(">Second<")
    assert "02:30" in page and "project-triggers" in page
    assert "Nightly" in client.get("/projects/").content.decode()


def test_outsider_cannot_see_or_edit_a_project(client, outsider, project):
    client.force_login(outsider)
    assert client.get(f"/projects/{project.pk}/").status_code == 404
    assert client.get(f"/projects/{project.pk}/edit/").status_code == 404
    assert "Vendor feeds" not in client.get("/projects/").content.decode()

"""Levels in Chromium: the task form's "use inherited value" blanks a field (static JS, under the CSP), the save
keeps it inherited; the project's settings page lists what a change reaches before saving."""
import pytest

from tasks import inheritance
from tasks.models import Task
from tests.test_browser import browser, shot  # noqa: F401  (the same Chromium fixture)
from tests.test_browser_pages import log_in, narrow_page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_use_inherited_value_in_the_form_and_the_affected_count(narrow_page, owner, project, organization,  # noqa: F811
                                                                add_task):
    page = narrow_page
    inheritance.save_level_settings(project, {"retries": 2, "encoding": "cp1252"})
    task = add_task("Orders", retries=5, encoding="utf-8")
    add_task("Stock")
    log_in(page, owner)

    page.goto(f"/tasks/{task.pk}/edit/")
    page.click("#section-schedule-tab, a[href='#section-schedule'], button[data-bs-target='#section-schedule']")
    assert page.input_value("#id_retries") == "5"
    page.click("button[data-inherit-field='retries']")
    assert page.input_value("#id_retries") == ""
    page.click("#save-task")
    page.wait_for_selector("#shared-settings")
    shot(page, "levels-task-details")
    assert page.get_attribute("#setting-retries", "data-level") == "project"
    assert page.get_attribute("#setting-encoding", "data-level") == "task"
    assert Task.objects.get(pk=task.pk).retries is None

    page.click("#setting-encoding button.use-inherited")
    page.wait_for_selector("#setting-encoding[data-level=project]")

    page.goto(f"/projects/{project.pk}/settings/")
    page.fill("#id_retention_days", "7")
    page.click("#review-settings")
    page.wait_for_selector("#affected:has-text('applies to 2 tasks in 1 project')")
    shot(page, "levels-project-settings")
    page.click("#confirm-save")
    page.wait_for_selector(".alert-success, .alert:has-text('saved')")
    project.refresh_from_db()
    assert project.settings["retention_days"] == 7
    assert page.csp_violations == []

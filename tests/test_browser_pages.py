"""Task Details in Chromium: fits 1,280 px, and follows a run without a reload (htmx, under the CSP)."""
import pytest
from django.utils import timezone

from runs.models import Run, RunFile, RunLog
from tests.test_browser import browser, shot  # noqa: F401  (the same Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def narrow_page(browser, live_server):  # noqa: F811
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.csp_violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text
            and page.csp_violations.append(f"{page.url}: {message.text}"))
    yield page
    context.close()


def log_in(page, user):
    from tests.conftest import PASSWORD

    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("#account-link")


def test_task_details_fits_1280_px_and_follows_a_run_without_reloading(narrow_page, owner, add_task):
    page = narrow_page
    task = add_task("Orders export with a rather long name", description="Daily orders for the vendor " * 5)
    task.query = "SELECT id, customer FROM orders WHERE customer NOT IN ('" + "x" * 300 + "') ORDER BY id"
    task.save()
    finished = Run.objects.create(task=task, status=Run.Status.FAILED, error="E" * 400)
    RunFile.objects.create(run=finished, name="orders_" + "y" * 120 + ".csv", size=558040, md5="0" * 32)
    run = Run.objects.create(task=task, status=Run.Status.QUEUED)
    log_in(page, owner)
    page.goto(task.get_absolute_url())
    page.wait_for_selector(f"#run-row-{run.pk} .badge[data-status=queued]")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.evaluate("window.stillTheSamePage = true")  # gone if the page reloads

    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, started_at=timezone.now(), rows=42)
    RunLog.objects.create(run=run, level="info", message="Query started")
    page.wait_for_selector(f"#live-status-{run.pk} .badge[data-status=running]")
    page.wait_for_selector(f"#run-row-{run.pk} .badge[data-status=running]")
    page.wait_for_selector(f"button:has-text('Cancel run #{run.pk}')")
    page.wait_for_selector("#live-run:has-text('42 rows')")
    page.wait_for_selector("#run-log:has-text('Query started')")

    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, finished_at=timezone.now())
    RunLog.objects.create(run=run, level="info", message="Finished successfully")
    RunFile.objects.create(run=run, name="orders.csv", size=10, md5="1" * 32)
    page.wait_for_selector(f"#run-row-{run.pk} .badge[data-status=succeeded]")
    page.wait_for_selector("#file-history td:has-text('orders.csv')")  # not stored here: shown as purged
    page.wait_for_selector("#run-log:has-text('Finished successfully')")
    assert page.locator(f"button:has-text('Cancel run #{run.pk}')").count() == 0
    assert page.evaluate("window.stillTheSamePage === true")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.click("#more-button")
    page.wait_for_selector("#reschedule-button:visible")
    shot(page, "pages-task-details-1280")
    assert page.csp_violations == []

"""A user's day in a real Chromium (Debian's, driven by Playwright): every page, screenshots kept.

Screenshots land in test-artifacts/screenshots/ so a person can look at what the pages show.
"""
import gc
import os
import sqlite3
from pathlib import Path

import pytest

from tests.servers.common import unavailable

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("Debian's chromium is not installed")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield browser
        browser.close()
    # Playwright's sync API lives in greenlets of this thread: collect what is left of it here and now, not
    # in some later test's garbage collection.
    gc.collect()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000},
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    # What Chromium reports when the Content-Security-Policy blocks something (an inline script, a style).
    page.csp_violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text
            and page.csp_violations.append(f"{page.url}: {message.text}"))
    yield page
    context.close()


@pytest.fixture
def sync_queue(monkeypatch):
    """django-q2 runs queued work in the web request itself; the real cluster is tested elsewhere."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_an_analyst_builds_runs_and_reuses_a_task(page, owner, organization, tmp_path, sync_queue):
    from tests.conftest import PASSWORD

    organization.set_member(owner, "admin", can_write_code=True)  # this analyst also sets up connections
    database = tmp_path / "shop.sqlite3"
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE orders (id INTEGER, customer TEXT, total TEXT)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "Ann", "9.50"), (2, "Bob, Jr.", "12.00")])
    db.commit()
    db.close()
    outbox = tmp_path / "outbox"
    outbox.mkdir()

    page.goto("/tasks/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    shot(page, "01-login")
    page.click("button:has-text('Log in')")
    page.wait_for_selector("button:has-text('Log out')")

    for name, kind, path in [("Shop database", "sqlite", str(database)), ("Outbox", "local", str(outbox))]:
        page.goto("/connections/new/")
        shot(page, "02-connection-new")
        page.fill("#id_name", name)
        page.select_option("#id_kind", kind)
        page.fill("#id_path", path)
        shot(page, f"02-connection-{kind}")
        page.click("text=Save connection")
        page.wait_for_selector(f"h1:has-text('{name}')")
    page.click("button:has-text('Test')")
    page.wait_for_selector("text=Connected")
    shot(page, "03-connection-tested")

    page.goto("/projects/new/")
    page.fill("#id_name", "Daily vendor files")
    page.fill("#id_time_zone", "Europe/London")
    page.click("#save-project")
    shot(page, "04-project-saved")
    page.wait_for_selector("h1:has-text('Daily vendor files')")
    shot(page, "04-project")

    page.click("a.btn:has-text('New task')")
    page.wait_for_load_state()  # the form's scripts (fields by kind, pickers) have run, not only its fields parsed
    page.fill("#id_name", "Orders export")
    page.select_option("#id_source_connection", label="Shop database (SQLite)")
    assert page.is_hidden("#id_command") and page.is_visible("#id_include_headers")
    page.evaluate("document.querySelector('#id_query').codeMirror.setValue('SELECT id, customer, total FROM orders ORDER BY id')")
    page.click("[data-bs-toggle=tab]:has-text('Output')")  # the form is in tabs: Source, ..., Output, Delivery
    page.fill("#id_file_name", "orders.csv")
    page.click("[data-bs-toggle=tab]:has-text('Delivery')")
    page.select_option("#id_destinations-0-connection", label="Outbox (Local folder)")
    page.fill("#id_destinations-0-folder", "daily")
    shot(page, "05-new-task")
    page.click("#save-task")
    page.wait_for_selector("h1:has-text('Orders export')")
    shot(page, "06-task-details")

    page.click("#run-button")
    page.wait_for_selector("#run-history .badge[data-status=succeeded]")
    shot(page, "07-task-after-run")
    expected = 'id,customer,total\n1,Ann,9.50\n2,"Bob, Jr.",12.00\n'
    assert (outbox / "daily" / "orders.csv").read_text() == expected
    link = page.locator("#file-history a:has-text('orders.csv')")
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200 and response.text() == expected
    assert "attachment" in response.headers["content-disposition"]

    page.click("#run-history a:has-text('#')")
    page.wait_for_selector("#run-log:has-text('Finished successfully')")
    shot(page, "08-run-log")

    page.goto("/tasks/")
    page.click("text=Orders export")
    page.click("#more-button")  # Duplicate, Enable/Disable, Rebuild schedule and Delete are in the More menu
    page.click("#duplicate-button")
    page.wait_for_selector("h1:has-text('Orders export (copy)')")
    assert page.is_visible("#disabled-badge")
    shot(page, "09-duplicate")

    page.goto("/tasks/")
    page.click("#project-cloud a:has-text('Daily vendor files')")
    page.wait_for_selector("#task-table")
    rows = page.locator("#task-table tbody tr")
    assert rows.count() == 2
    shot(page, "10-all-tasks-filtered")
    page.goto("/tasks/mine/")
    shot(page, "11-my-tasks")
    page.goto("/projects/")
    shot(page, "12-projects")
    page.goto("/files/")
    shot(page, "13-file-hub")
    assert page.csp_violations == []


def test_the_main_pages_work_under_the_content_security_policy(page, owner, staff, project, tmp_path):
    """No page trips the policy (no inline script, handler or style), and the scripts moved out still work."""
    from tests.conftest import PASSWORD
    from connections.models import Connection
    from runs.models import Run, RunFile
    from tasks.models import Dependency, Task

    project.organization.set_member(owner, "admin", can_write_code=True)  # sees every page, connections' too
    database = tmp_path / "shop.sqlite3"
    sqlite3.connect(database).close()
    source = Connection.objects.create(organization=project.organization, name="Shop", kind="sqlite",
                                       path=str(database))
    task = Task.objects.create(project=project, name="Orders", source_connection=source, query="SELECT 1",
                               file_name="orders_{today:%Y%m%d}.csv")
    Task.objects.create(project=project, name="Second")
    Dependency.objects.create(upstream=task, downstream=Task.objects.get(name="Second"))
    run = Run.objects.create(task=task, status=Run.Status.SUCCEEDED)
    stored = tmp_path / "data" / "runs" / "orders.csv"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text("id\n1\n")
    RunFile.objects.create(run=run, name="orders.csv", stored_path=str(stored), size=5)

    for user in (owner, staff):
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_selector("button:has-text('Log out')")
        if user == staff:
            break
        page.goto("/tasks/")
        page.check("#select-all")  # static/js/select-all.js
        assert page.locator("input[name=task]:checked").count() == 2
        page.goto("/tasks/new/")
        page.wait_for_selector(".CodeMirror")
        page.goto(f"/tasks/{task.pk}/")
        page.wait_for_selector("#preview-file-name")  # static/js/task-preview.js loaded the preview
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.click(f"#resend-{RunFile.objects.get().pk}")  # static/js/confirm.js asks first
        assert asked == ["Send orders.csv again to every current destination of this task?"]
        page.goto(f"/tasks/{task.pk}/edit/")
        page.wait_for_selector(".CodeMirror")
        page.goto(f"/runs/{run.pk}/")
        page.goto(f"/projects/{project.pk}/")
        page.wait_for_selector("svg.dependency-graph")
        page.goto("/")  # the dashboard: its timeline is drawn on the server, no script
        page.wait_for_selector("svg.timeline")
        page.goto("/runs/")
        page.wait_for_selector("#run-table")
        page.goto("/connections/new/")
        page.select_option("#id_kind", "sftp")
        page.goto(f"/connections/{source.pk}/")
        page.click("button:has-text('Log out')")
        page.wait_for_selector("#id_username")
    page.goto(f"/admin/tasks/task/{task.pk}/change/")
    page.wait_for_selector("#task_form")
    page.goto("/admin/tasks/task/")
    page.wait_for_selector("#changelist")
    shot(page, "14-admin-under-csp")
    assert page.csp_violations == []

"""A new analyst's whole journey in Chromium, as issue 13 asks: a connection, a project with a typed cron
expression, a task through the tabbed form with Test query and the file-name preview, a run followed live
(Task Details and the run page, without reloading) by a real django-q2 cluster, the file downloaded, and
every time shown in the analyst's own zone with its label. Screenshots in test-artifacts/screenshots/."""
import datetime as dt
import re
import zoneinfo

import pytest

from runs.models import Run
from tasks.models import Dependency, Task
from tests import factories
from tests.test_browser import browser, page, shot  # noqa: F401  (the same Chromium fixtures)
from tests.test_browser_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The run must last long enough to be watched: the one scalar subquery counts to 10 million in SQLite
# (a few seconds of CPU), evaluated once; the rows are the three orders.
BUSY = ("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) "
        "SELECT count(*) FROM c)")
QUERY = f"SELECT id, customer, total FROM orders WHERE {BUSY} > 0 AND region = :region ORDER BY id"
EXPECTED = 'id,customer,total\n1,Ann,9.50\n3,"Bob, Jr.",12.00\n'


def fits(page):  # noqa: F811
    """No sideways scrolling at the 1,400 px the issue's tester used."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_new_analyst_sets_up_runs_watches_and_downloads_an_extract(page, owner, organization, tmp_path,  # noqa: F811
                                                                     qcluster):
    organization.set_member(owner, "admin", can_write_code=True)  # a new organization's first analyst
    database = factories.sqlite_database(
        tmp_path / "shop.sqlite3", "CREATE TABLE orders (id INTEGER, customer TEXT, total TEXT, region TEXT)",
        {"orders": [(1, "Ann", "9.50", "EU"), (2, "Cy", "3.00", "US"), (3, "Bob, Jr.", "12.00", "EU")]})
    outbox = tmp_path / "outbox"
    (outbox / "archive").mkdir(parents=True)
    log_in(page, owner)

    # Times in the analyst's own zone, which is neither the project's nor UTC.
    page.goto("/account/")
    page.select_option("#id_time_zone", "Asia/Tokyo")
    page.click("button:has-text('Save')")
    page.wait_for_selector("#account-link:has-text('Asia/Tokyo')")

    for name, kind, path in [("Shop database", "sqlite", database), ("Outbox", "local", outbox)]:
        page.goto("/connections/new/")
        page.fill("#id_name", name)
        page.select_option("#id_kind", kind)
        page.fill("#id_path", str(path))
        page.click("text=Save connection")
        page.wait_for_selector(f"h1:has-text('{name}')")
        page.click("button:has-text('Test')")
        page.wait_for_selector("text=Connected")
    assert "1 folder" in page.inner_text("main")  # the outbox holds a folder and no file yet
    shot(page, "journey-01-connection-tested")

    page.goto("/projects/new/")
    page.fill("#id_name", "Daily vendor files")
    page.fill("#id_time_zone", "Europe/London")
    page.fill("#id_triggers-0-expression", "30 6 * * mon-fri")
    page.wait_for_selector(".cron-description")
    assert "06:30" in page.inner_text(".cron-description") and "Monday through Friday" in page.inner_text(
        ".cron-description")
    assert page.locator(".cron-times li").count() == 5
    assert fits(page)
    shot(page, "journey-02-project-cron")
    page.click("#save-project")
    page.wait_for_selector("h1:has-text('Daily vendor files')")
    trigger = organization.projects.get().triggers.get()
    assert (trigger.hour, trigger.minute, trigger.day_of_week) == ("6", "30", "mon-fri")

    page.click("a.btn:has-text('New task')")
    page.wait_for_load_state()  # the form's scripts (fields by kind, pickers) have run, not only its fields parsed
    page.fill("#id_name", "EU orders")
    listed = lambda: page.locator("#id_source_connection option:enabled").all_inner_texts()  # noqa: E731
    assert listed() == ["---------", "Shop database (SQLite)"]  # a query needs a database
    page.select_option("#id_source_kind", "files")
    assert listed() == ["---------", "Outbox (Local folder)"]  # files come from a file store
    page.select_option("#id_source_kind", "query")
    page.select_option("#id_source_connection", label="Shop database (SQLite)")
    page.evaluate(f"document.querySelector('#id_query').codeMirror.setValue({QUERY!r})")
    page.fill("#id_parameters-0-key", "region")
    page.fill("#id_parameters-0-value", "EU")
    page.click("#try-query-button")
    page.wait_for_selector("#try-query-rows", timeout=60_000)
    headers = page.locator("#try-query-rows thead th").all_inner_texts()
    assert [header.split("\n")[0] for header in headers] == ["id", "customer", "total"]
    rows = page.locator("#try-query-rows tbody tr").all_inner_texts()
    assert [row.split("\t")[:2] for row in rows] == [["1", "Ann"], ["3", "Bob, Jr."]]
    assert "EU" in page.inner_text("#try-query-bound")  # the value is bound, not pasted into the SQL
    shot(page, "journey-03-test-query")

    page.click("[data-bs-toggle=tab]:has-text('Output')")
    page.fill("#id_file_name", "orders_{region}_{today:%Y%m%d}.csv")
    page.click("#try-name-button")
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/London")).strftime("%Y%m%d")
    page.wait_for_selector(f"#preview-file-name:has-text('orders_EU_{today}.csv')")
    assert "Europe/London" in page.inner_text("#try-name-result")  # file names follow the project's zone
    page.click("[data-bs-toggle=tab]:has-text('Delivery')")
    page.select_option("#id_destinations-0-connection", label="Outbox (Local folder)")
    page.fill("#id_destinations-0-folder", "daily")
    assert fits(page)
    shot(page, "journey-04-task-form")
    page.click("#save-task")
    page.wait_for_selector("h1:has-text('EU orders')")
    task = Task.objects.get(name="EU orders")
    assert "times in Asia/Tokyo" in page.inner_text("main")

    # Run now: Task Details follows the run to its end without reloading.
    page.click("#run-button")
    run = Run.objects.get(task=task)
    page.wait_for_selector(f"#run-row-{run.pk}")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator(".cancel-run-button").count() == 1  # "Cancel queued run" or "Cancel run"
    shot(page, "journey-05-task-running")
    page.wait_for_selector(f"#live-status-{run.pk} .badge[data-status=succeeded]", timeout=90_000)
    page.wait_for_selector(f"#run-row-{run.pk} .badge[data-status=succeeded]")
    page.wait_for_selector(f"#file-history a:has-text('orders_EU_{today}.csv')")
    assert page.locator(".cancel-run-button").count() == 0
    assert page.evaluate("window.stillTheSamePage === true")
    started = page.inner_text(f"#run-row-{run.pk} td:nth-child(4)")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d JST", started), started
    assert fits(page)
    shot(page, "journey-06-task-after-run")

    # The run page: finished, with its duration, the file to download and a Rerun button.
    page.click(f"#run-row-{run.pk} a")
    page.wait_for_selector("#rerun-button")
    assert re.search(r"\d+ s", page.inner_text("#run-duration"))
    assert "JST" in page.inner_text("main p.text-muted")
    with page.expect_download() as download:
        page.click(f"#run-files a:has-text('orders_EU_{today}.csv')")
    assert open(download.value.path(), encoding="utf-8").read() == EXPECTED
    assert (outbox / "daily" / f"orders_EU_{today}.csv").read_text() == EXPECTED
    assert fits(page)
    shot(page, "journey-07-run-page")

    # Rerun, then watch the new run from its own page: status, controls and files follow without a reload.
    page.click("#rerun-button")
    rerun = Run.objects.exclude(pk=run.pk).get(task=task)
    page.goto(f"/runs/{rerun.pk}/")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator("#cancel-button").count() == 1 and page.locator("#rerun-button").count() == 0
    assert "No files yet." in page.inner_text("#run-files") and page.locator("#run-manifest").count() == 0
    page.wait_for_selector(f"#live-status-{rerun.pk} .badge[data-status=succeeded]", timeout=90_000)
    page.wait_for_selector("#rerun-button")
    page.wait_for_selector(f"#run-files a:has-text('orders_EU_{today}.csv')")
    page.wait_for_selector("#run-manifest")  # the delivery manifest, now there is one
    page.wait_for_selector("#run-log:has-text('Finished')")
    assert page.locator("#cancel-button").count() == 0
    assert page.evaluate("window.stillTheSamePage === true")
    shot(page, "journey-08-rerun-page")
    assert page.csp_violations == []


def test_runs_after_is_chosen_by_searching_among_many_tasks(page, owner, project, add_task):  # noqa: F811
    """Past 50 tasks the "Runs after" picker is a search: typing finds the task, choosing it and saving links it."""
    Task.objects.bulk_create([Task(project=project, name=f"Load {index:03d}") for index in range(60)])
    report = add_task("Report")
    log_in(page, owner)
    page.goto(f"/tasks/{report.pk}/edit/")
    page.click("[data-bs-toggle=tab]:has-text('Schedule and retries')")
    page.fill("#id_dependencies-0-upstream-search", "load 05")
    page.wait_for_selector("#id_dependencies-0-upstream-matches [data-pick-value]")
    assert page.locator("#id_dependencies-0-upstream-matches [data-pick-value]").all_inner_texts() == [
        f"Load 05{index} · Vendor feeds" for index in range(10)]
    page.click("#id_dependencies-0-upstream-matches button:has-text('Load 057')")
    assert page.locator("#id_dependencies-0-upstream option:checked").inner_text() == "Load 057 · Vendor feeds"
    page.click("#save-task")
    page.wait_for_selector("#run-button")  # Task Details: saved
    assert list(Dependency.objects.values_list("upstream__name", flat=True)) == ["Load 057"]
    shot(page, "journey-09-runs-after-search")
    assert page.csp_violations == []

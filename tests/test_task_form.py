"""The task form as an analyst meets it: tabs, words, parameter names, Test query and the file-name preview."""
import sqlite3

import pytest

from connections.models import Connection
from projects.models import Parameter
import psycopg

from tests.servers import postgres as pg

pytestmark = pytest.mark.django_db


def pg_db(name):
    host, port, user = pg.dsn_parts()
    return psycopg.connect(host=host, port=port, user=user, dbname=name, autocommit=True)


@pytest.fixture
def shop(organization, tmp_path):
    path = tmp_path / "shop.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE orders (id INTEGER, region TEXT, amount REAL, day TEXT)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)",
                   [(i, "EU" if i % 2 else "US", i * 1.5, "2026-01-01") for i in range(1, 31)])
    db.commit()
    db.close()
    return Connection.objects.create(organization=organization, name="Shop DB", kind="sqlite", path=str(path))


def form_data(project, connection, **fields):
    data = {"project": project.pk, "name": "Daily orders", "run_rank": 1, "source_kind": "query",
            "text_location": "inline", "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal",
            "line_terminator": "lf", "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail",
            "file_handling": "as_is", "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
            "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "",
            "source_connection": connection.pk, "query": "SELECT 1"}
    for prefix in ("destinations", "parameters", "conditions", "notifications", "dependencies"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(fields)
    return data


def test_the_form_has_tabs_and_words_for_analysts(client, owner, project, shop):
    Parameter.objects.create(project=project, key="region", value="EU")
    client.force_login(owner)
    page = client.get(f"/tasks/new/?project={project.pk}").content.decode()
    for tab in ("Source", "Processing", "Output", "Delivery", "Notifications", "Schedule and retries"):
        assert f">{tab}</a>" in page or f">{tab}</button>" in page, tab
    assert 'data-bs-toggle="tab"' in page
    for label in ("Column separator", "Encrypt for (GPG key)", "Character encoding"):
        assert label in page
    for default in ("Csv delimiter", "Gpg key", "Smtp connection"):
        assert default not in page
    # The names a query or file name may use: built-ins and this project's own.
    assert "{yesterday}" in page and "{region}" in page
    assert 'id="try-query-button"' in page and 'id="try-name-button"' in page


def test_an_error_opens_the_tab_holding_it(client, owner, project, shop):
    client.force_login(owner)
    page = client.post("/tasks/new/", form_data(project, shop, retries="many")).content.decode()
    def pane(section):
        start = page.index(f'<div id="{section}"')
        return page[start:page.index(">", start)]

    assert "active" in pane("section-schedule") and "active" not in pane("section-source")
    assert "Enter a whole number." in page


def test_test_query_on_sqlite_shows_rows_types_and_bound_values(client, owner, project, shop):
    client.force_login(owner)
    data = form_data(project, shop, query="SELECT id, region, amount FROM orders WHERE region = {region} ORDER BY id",
                     **{"parameters-TOTAL_FORMS": 1, "parameters-0-key": "region", "parameters-0-value": "EU"})
    page = client.post("/tasks/try/", {**data, "try": "query"}).content.decode()
    assert "WHERE region = &#x27;EU&#x27;" in page  # the query as it will run
    assert "1: EU" in page  # the bound value
    assert "<th>id<br><span class=\"text-muted fw-normal\">integer</span></th>" in page
    assert "<th>amount<br><span class=\"text-muted fw-normal\">real</span></th>" in page
    assert page.count("<tr><td>") == 15 and "15 rows" in page and "read-only" in page


def test_test_query_shows_twenty_rows_and_the_database_message(client, owner, project, shop):
    client.force_login(owner)
    page = client.post("/tasks/try/", {**form_data(project, shop, query="SELECT * FROM orders"),
                                       "try": "query"}).content.decode()
    assert page.count("<tr><td>") == 20 and "there are more" in page
    bad = client.post("/tasks/try/", {**form_data(project, shop, query="SELECT nope FROM orders"), "try": "query"})
    assert bad.status_code == 200 and "no such column: nope" in bad.content.decode()


def test_test_query_on_sqlite_cannot_write(client, owner, project, shop):
    client.force_login(owner)
    page = client.post("/tasks/try/", {**form_data(project, shop, query="DELETE FROM orders"),
                                       "try": "query"}).content.decode()
    assert "readonly" in page or "read-only" in page.lower()
    assert "try-error" in page
    assert sqlite3.connect(shop.path).execute("SELECT count(*) FROM orders").fetchone()[0] == 30


def test_test_query_on_postgresql(client, owner, project, pg_connection, pg_database):
    with pg_db(pg_database) as db:
        db.execute("CREATE TABLE sales (id int, amount numeric(10,2), sold date)")
        db.execute("INSERT INTO sales SELECT g, g * 1.25, DATE '2026-01-01' + g FROM generate_series(1, 40) g")
    client.force_login(owner)
    query = "SELECT id, amount, sold FROM sales WHERE id > {minimum} ORDER BY id"
    data = form_data(project, pg_connection, query=query,
                     **{"parameters-TOTAL_FORMS": 1, "parameters-0-key": "minimum", "parameters-0-value": "5"})
    page = client.post("/tasks/try/", {**data, "try": "query"}).content.decode()
    assert "WHERE id &gt; &#x27;5&#x27;" in page and "1: 5" in page
    assert "numeric(10,2)" in page and ">date</span>" in page and ">int4</span>" in page
    assert "<td>6</td>" in page and page.count("<tr><td>") == 20 and "READ ONLY" in page
    bad = client.post("/tasks/try/", {**form_data(project, pg_connection, query="SELECT nope FROM sales"),
                                      "try": "query"}).content.decode()
    assert 'column &quot;nope&quot; does not exist' in bad
    write = client.post("/tasks/try/", {**form_data(project, pg_connection, query="DELETE FROM sales"),
                                        "try": "query"}).content.decode()
    assert "read-only transaction" in write
    with pg_db(pg_database) as db:
        assert db.execute("SELECT count(*) FROM sales").fetchone()[0] == 40


def test_file_name_preview_puts_parameters_in(client, owner, project, shop):
    client.force_login(owner)
    data = form_data(project, shop, file_name="orders_{region}_{today:%Y}.csv", zip_output="on",
                     zip_name="{region}_pack", **{"parameters-TOTAL_FORMS": 1, "parameters-0-key": "region",
                                                  "parameters-0-value": "EU"})
    page = client.post("/tasks/try/", {**data, "try": "name"}).content.decode()
    import datetime
    assert f"orders_EU_{datetime.date.today():%Y}.csv" in page and "EU_pack.zip" in page
    wrong = client.post("/tasks/try/", {**form_data(project, shop, file_name="x_{regio}.csv"), "try": "name"})
    assert "Unknown parameter {regio}" in wrong.content.decode()


def test_a_sensitive_parameter_is_masked(client, owner, project, shop):
    client.force_login(owner)
    data = form_data(project, shop, query="SELECT {token} AS t", file_name="f_{token}.csv",
                     **{"parameters-TOTAL_FORMS": 1, "parameters-0-key": "token", "parameters-0-value": "S3cretValue",
                        "parameters-0-sensitive": "on"})
    for what in ("query", "name"):
        page = client.post("/tasks/try/", {**data, "try": what}).content.decode()
        assert "S3cretValue" not in page and "********" in page


def test_a_viewer_is_refused(client, member, project, shop):
    client.force_login(member)
    assert client.post("/tasks/try/", {**form_data(project, shop), "try": "query"}).status_code == 403


# --- triggers ------------------------------------------------------------------------------------------

def trigger_data(project, **row):
    data = {"organization": project.organization_id, "name": project.name, "owner": project.owner_id,
            "enabled": "on", "mode": project.mode, "max_parallel": project.max_parallel, "time_zone": "Europe/Paris",
            "missed_runs": project.missed_runs, "triggers-TOTAL_FORMS": 1, "triggers-INITIAL_FORMS": 0,
            "parameters-TOTAL_FORMS": 0, "parameters-INITIAL_FORMS": 0}
    data.update({f"triggers-0-{key}": value for key, value in {"jitter_seconds": 0, **row}.items()})
    return data


def test_a_cron_expression_fills_the_trigger_fields(client, owner, project):
    from projects.cron_expression import fields_of

    assert fields_of("0 6 * * 1-5") == {"second": "0", "minute": "0", "hour": "6", "day": "*", "month": "*",
                                        "day_of_week": "mon,tue,wed,thu,fri"}
    assert fields_of("*/10 30 2 1 * 0")["day_of_week"] == "sun" and fields_of("*/10 30 2 1 * 0")["second"] == "*/10"
    client.force_login(owner)
    response = client.post(f"/projects/{project.pk}/edit/", trigger_data(project, kind="cron", enabled="on",
                                                                         expression="30 6 * * 1-5"))
    assert response.status_code == 302
    trigger = project.triggers.get()
    assert (trigger.hour, trigger.minute, trigger.day_of_week) == ("6", "30", "mon,tue,wed,thu,fri")


def test_a_bad_expression_and_a_blank_cron_row_are_refused(client, owner, project):
    client.force_login(owner)
    bad = client.post(f"/projects/{project.pk}/edit/", trigger_data(project, kind="cron", expression="0 6 * *"))
    assert "A cron expression has five fields" in bad.content.decode()
    blank = client.post(f"/projects/{project.pk}/edit/", trigger_data(project, kind="cron", enabled="on",
                                                                      time_zone="UTC"))
    assert blank.status_code == 200 and "a blank cron trigger is refused" in blank.content.decode()
    assert not project.triggers.exists()


def test_the_cron_preview_describes_and_lists_the_next_five_times(client, owner):
    client.force_login(owner)
    page = client.get("/projects/cron-preview/", {"expression": "0 6 * * 1-5", "zone": "Europe/Paris"}).content.decode()
    assert "At 06:00, Monday through Friday" in page and "in Europe/Paris" in page
    assert page.count("<li>") == 5 and " 06:00:00 CE" in page and "Sat " not in page and "Sun " not in page
    wrong = client.get("/projects/cron-preview/", {"expression": "0 99 * * *", "zone": "UTC"})
    assert wrong.status_code == 200 and "cron-error" in wrong.content.decode()


def test_the_project_form_shows_trigger_fields_by_kind(client, owner, project):
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/edit/").content.decode()
    assert 'data-switch="triggers-0-kind" data-kinds="interval"' in page
    assert 'data-switch="triggers-0-kind" data-kinds="once"' in page and 'name="triggers-0-expression"' in page

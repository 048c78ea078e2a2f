"""Parameters: Atlas-style date expressions, named values, overrides, SQL binding, masking and the preview."""
import datetime
import json
import sqlite3
import zoneinfo

import pytest

from projects.models import Parameter
from runs import masking, parameters, preview, sql_parameters
from runs.models import Run
from runs.parameters import ParameterError, expand_dates, render, resolve
from tasks.models import Destination
from tests.fixtures.delivery import NEW_YORK, ORDERS_QUERY, log_text

LONDON = zoneinfo.ZoneInfo("Europe/London")
UTC = datetime.timezone.utc


def at(year, month, day, hour=6, minute=0, zone=NEW_YORK):
    return datetime.datetime(year, month, day, hour, minute, tzinfo=zone)


# --- date expressions -------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, moment, expected", [
    ("orders_%Y%m%d.csv", at(2024, 3, 15), "orders_20240315.csv"),
    ("orders_%Y%m%d-1.csv", at(2024, 3, 1), "orders_20240229.csv"),  # leap year
    ("orders_%Y%m%d-1.csv", at(2023, 3, 1), "orders_20230228.csv"),
    ("%Y-%m-%d-1", at(2024, 1, 1), "2023-12-31"),  # across a year end
    ("%Y-%m-1", at(2024, 3, 31), "2024-02"),
    ("%Y%m-1%d", at(2024, 3, 31), "20240229"),  # a month back from the 31st lands on the month's end
    ("%Y%m+1%d", at(2023, 1, 31), "20230228"),
    ("%Y-1%m%d", at(2024, 2, 29), "20230228"),  # a year back from Feb 29
    ("%Y+4%m%d", at(2024, 2, 29), "20280229"),
    ("%Y%m%d-1_%Y%m%d", at(2024, 3, 1), "20240229_20240301"),  # a repeated code starts a new group
    ("%Y%m-1lastday", at(2024, 3, 15), "20240229"),
    ("%Y%m-1lastday", at(2023, 3, 15), "20230228"),
    ("%Y-%m-firstday0", at(2024, 3, 15), "2024-03-01"),
    ("%Y%m-1firstday0_%Y%m-1lastday", at(2024, 1, 10), "20231201_20231231"),
    ("%m-6-%d-30-%Y+1-lastday", at(2024, 3, 1), "08-02-2024-31"),
    ("%d-7 %a-7", at(2024, 3, 15), "08 Fri"),
    ("%U-1", at(2024, 3, 15), "09"),
    ("%B %Y", at(2024, 3, 15), "March 2024"),
    ("100%% done %H:%M", at(2024, 3, 15, 6, 5), "100% done 06:05"),
    ("no codes here", at(2024, 3, 15), "no codes here"),
])
def test_date_expressions(expression, moment, expected):
    assert expand_dates(expression, moment) == expected


def test_hour_math_counts_real_hours_across_daylight_saving_in_new_york():
    # 2024-03-10: clocks jump from 02:00 to 03:00. 03:30 EDT minus one real hour is 01:30 EST.
    moment = datetime.datetime(2024, 3, 10, 7, 30, tzinfo=UTC).astimezone(NEW_YORK)
    assert expand_dates("%Y%m%d %H%M", moment) == "20240310 0330"
    assert expand_dates("%H-1:%M", moment) == "01:30"
    assert expand_dates("%Y%m%d-1", moment) == "20240309"
    # 2024-11-03: 01:00-02:00 happens twice. 00:30 EDT plus two real hours is 01:30 EST.
    moment = datetime.datetime(2024, 11, 3, 4, 30, tzinfo=UTC).astimezone(NEW_YORK)
    assert expand_dates("%H+2:%M %Z", moment) == "01:30 EST"


def test_day_math_keeps_the_wall_clock_across_daylight_saving_in_london():
    # 2024-03-31 (clocks forward at 01:00 GMT): 00:30 GMT plus one real hour is 02:30 BST.
    moment = datetime.datetime(2024, 3, 31, 0, 30, tzinfo=UTC).astimezone(LONDON)
    assert expand_dates("%H+1:%M %Z", moment) == "02:30 BST"
    # 2024-10-27 (clocks back): the day before 23:30 GMT is 26 October, whatever the hour's length.
    moment = datetime.datetime(2024, 10, 27, 23, 30, tzinfo=UTC).astimezone(LONDON)
    assert expand_dates("%Y-%m-%d-1 %H:%M", moment) == "2024-10-26 23:30"


# --- named values, overrides, parse(...) ---------------------------------------------------------------

@pytest.fixture
def dated_task(ny_project, make_task, sqlite_orders):
    return make_task(sqlite_orders, ORDERS_QUERY, name="Daily orders", file_name="orders_{yesterday:%Y%m%d}.csv")


def test_named_values_in_the_projects_time_zone(dated_task):
    # 03:30 UTC on 1 March is still 29 February in New York (a leap year).
    run = Run.objects.create(task=dated_task, scheduled_for=datetime.datetime(2024, 3, 1, 3, 30, tzinfo=UTC))
    values = resolve(dated_task, run)
    assert {key: str(values[key]) for key in parameters.NAMED_DATES} == {
        "today": "2024-02-29", "yesterday": "2024-02-28", "first_of_month": "2024-02-01",
        "last_of_month": "2024-02-29", "first_of_last_month": "2024-01-01", "last_of_last_month": "2024-01-31"}
    text = render("{task}-{project}-{run_id}-{today:%d.%m.%Y}-{yesterday:%Y%m%d}-{now:%H%M}", values)
    assert text == f"Daily orders-Vendor feeds-{run.pk}-29.02.2024-20240228-2230"


def test_named_values_at_a_year_end(dated_task):
    values = resolve(dated_task, when=datetime.date(2025, 1, 1))
    assert (str(values["yesterday"]), str(values["first_of_last_month"]), str(values["last_of_last_month"])) == (
        "2024-12-31", "2024-12-01", "2024-12-31")


def test_a_task_value_overrides_the_projects_everywhere(dated_task, ny_project):
    Parameter.objects.create(project=ny_project, key="region", value="US")
    Parameter.objects.create(project=ny_project, key="currency", value="USD")
    Parameter.objects.create(task=dated_task, key="region", value="EU")
    values = resolve(dated_task, when=datetime.date(2024, 3, 15))
    assert (values["region"], values["currency"]) == ("EU", "USD")
    assert render("{region}_{currency}_%Y.csv", values) == "EU_USD_2024.csv"
    sql, bound = sql_parameters.bind_query("SELECT 1 WHERE r = {region}", values)
    assert bound == ["EU"]


def test_parse_values_and_variable_keys_as_atlas_wrote_them(dated_task):
    Parameter.objects.create(task=dated_task, key="@start_date", value="'parse(%Y-%m-firstday0)'")
    Parameter.objects.create(task=dated_task, key="@end", value="parse(%Y%m%d-1)")
    Parameter.objects.create(task=dated_task, key="label", value="{yesterday:%d/%m} at 100%d")
    values = resolve(dated_task, when=at(2024, 3, 15))
    assert values["@start_date"] == "'2024-03-01'"
    assert values["@end"] == "20240314"
    assert values["label"] == "14/03 at 100%d"  # date codes in a plain value are left alone
    assert render("sales_@end.csv", values) == "sales_20240314.csv"  # a variable-like key is replaced bare
    assert render("sales_{end}.csv", values) == "sales_20240314.csv"


def test_an_unknown_name_is_an_error_not_a_strange_file_name(dated_task):
    values = resolve(dated_task, when=at(2024, 3, 15))
    with pytest.raises(ParameterError, match=r"Unknown parameter \{yesterdy\}.*\{yesterday\}"):
        render("orders_{yesterdy}.csv", values)
    assert render("echo ${HOME} {yesterday}", values) == "echo ${HOME} 2024-03-14"


def test_a_retry_and_a_late_run_keep_the_original_scheduled_time(dated_task):
    first = Run.objects.create(task=dated_task, scheduled_for=at(2024, 3, 15, 6))
    retry = Run.objects.create(task=dated_task, trigger=Run.Trigger.RETRY, attempt=2, first_attempt=first,
                               scheduled_for=at(2024, 3, 16, 0, 30))
    assert str(resolve(dated_task, retry)["yesterday"]) == "2024-03-14"
    assert render(dated_task.file_name, resolve(dated_task, retry)) == "orders_20240314.csv"


def test_the_run_names_its_file_for_its_scheduled_day(dated_task, local_folder, run_at):
    connection, folder = local_folder()
    Destination.objects.create(task=dated_task, connection=connection, folder="{yesterday:%Y/%m}")
    run = run_at(dated_task, datetime.datetime(2024, 1, 1, 0, 15))
    assert run.status == "succeeded", log_text(run)
    assert (folder / "2023" / "12" / "orders_20231231.csv").exists()


# --- SQL --------------------------------------------------------------------------------------------------

SQL_PARAMS = {"region": "EU", "customer": "O'Hara", "yesterday": datetime.date(2024, 3, 14),
              "@start_date": "'2024-03-01'", "limit": 10}


def test_placeholders_are_bound_never_written_into_the_query():
    sql = ("SELECT * FROM t WHERE r = {region} AND c LIKE '%{customer}%' AND d = '{yesterday:%Y%m%d}' "
           "AND n < :limit AND x::text LIKE 'a%' -- {not_a_parameter}")
    bound, values = sql_parameters.bind_query(sql, SQL_PARAMS)
    assert bound == ("SELECT * FROM t WHERE r = ? AND c LIKE ? AND d = ? AND n < ? AND x::text LIKE 'a%' "
                     "-- {not_a_parameter}")
    assert values == ["EU", "%O'Hara%", "20240314", 10]
    psycopg_sql, _ = sql_parameters.bind_query(sql, SQL_PARAMS, style="format")
    assert "c LIKE %s" in psycopg_sql and "LIKE 'a%%'" in psycopg_sql
    assert sql_parameters.display_query(sql, SQL_PARAMS).startswith(
        "SELECT * FROM t WHERE r = 'EU' AND c LIKE '%O''Hara%' AND d = '20240314' AND n < 10")


def test_a_query_without_parameters_is_left_exactly_as_written():
    sql = "SELECT '%d' AS code, '{1,2}' AS arr FROM t WHERE name LIKE '%david%'"
    assert sql_parameters.bind_query(sql, SQL_PARAMS) == (sql, None)


def test_declare_and_set_get_the_parameter_value_bound():
    sql = ("DECLARE @start_date DATE = '2020-01-01', @other INT = 5;\n"
           "SET @start_date = DATEADD(day, -1, GETDATE());\n"
           "SELECT * FROM t WHERE d >= @start_date AND o = @other")
    bound, values = sql_parameters.bind_query(sql, SQL_PARAMS)
    assert bound == ("DECLARE @start_date DATE = ?, @other INT = 5;\nSET @start_date = ?;\n"
                     "SELECT * FROM t WHERE d >= @start_date AND o = @other")
    assert values == ["2024-03-01", "2024-03-01"]  # the quotes Atlas users typed are not part of the value


def test_a_variable_without_declare_is_bound_where_it_is_used():
    bound, values = sql_parameters.bind_query("SELECT * FROM t WHERE d >= @start_date", SQL_PARAMS)
    assert (bound, values) == ("SELECT * FROM t WHERE d >= ?", ["2024-03-01"])


def test_a_hostile_value_stays_a_value(tmp_path):
    db = sqlite3.connect(tmp_path / "x.sqlite3")
    db.execute("CREATE TABLE people (name TEXT)")
    db.execute("INSERT INTO people VALUES ('Ada')")
    hostile = {"name": "x'; DROP TABLE people; --"}
    sql, values = sql_parameters.bind_query("SELECT count(*) FROM people WHERE name = {name}", hostile)
    assert db.execute(sql, values).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM people").fetchone() == (1,)


def test_an_unknown_placeholder_in_a_query_is_named():
    with pytest.raises(ParameterError, match=r"\{regoin\}.*in the query"):
        sql_parameters.bind_query("SELECT * FROM t WHERE r = {regoin}", SQL_PARAMS)


# --- masking and the preview ------------------------------------------------------------------------------

@pytest.fixture
def secret_task(dated_task, ny_project, local_folder):
    Parameter.objects.create(project=ny_project, key="api_key", value="s3cr3t-%d-{today}", sensitive=True)
    Parameter.objects.create(task=dated_task, key="region", value="EU")
    connection, _ = local_folder("Vendor drop")
    Destination.objects.create(task=dated_task, connection=connection, folder="in/{region}/%Y")
    dated_task.query = "SELECT * FROM orders WHERE day = {yesterday} AND key = {api_key} AND region = {region}"
    dated_task.zip_output, dated_task.zip_name = True, "bundle_{today:%Y%m%d}"
    dated_task.save()
    return dated_task


def test_sensitive_values_are_used_verbatim_and_masked(secret_task):
    values = resolve(secret_task, when=at(2024, 3, 15))
    assert values["api_key"] == "s3cr3t-%d-{today}"
    assert masking.mask("calling with s3cr3t-%d-{today} now", secret_task) == "calling with ******** now"


def test_preview_for_a_chosen_date(secret_task):
    result = preview.preview(secret_task, datetime.date(2024, 3, 1))
    assert result["file_name"] == "orders_20240229.csv"
    assert result["zip_name"] == "bundle_20240301.zip"
    assert result["folders"] == [{"connection": "Vendor drop", "folder": "in/EU/2024"}]
    assert result["query"] == secret_task.query
    assert result["query_preview"] == ("SELECT * FROM orders WHERE day = '2024-02-29' AND key = '********' "
                                       "AND region = 'EU'")
    rows = {row["key"]: row for row in result["parameters"]}
    assert rows["api_key"]["value"] == "********" and rows["region"]["origin"] == "task"
    assert rows["yesterday"]["value"] == "2024-02-29"
    assert "s3cr3t" not in json.dumps(result)


def test_preview_endpoint_shows_the_task_page_fragment(secret_task, client_of, member, outsider):
    url = f"/tasks/{secret_task.pk}/preview/?date=2024-03-01"
    page = client_of(member).get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "orders_20240229.csv" in text and "in/EU/2024" in text and "s3cr3t" not in text
    data = client_of(member).get(url + "&format=json").json()
    assert data["file_name"] == "orders_20240229.csv"
    refused = client_of(member).get(f"/tasks/{secret_task.pk}/preview/?date=March&format=json")
    assert (refused.status_code, refused.json()["errors"]) == (400, ["'March' is not a date: use YYYY-MM-DD"])
    assert client_of(outsider).get(url).status_code == 404


def test_a_sensitive_value_is_bound_but_never_shown_in_the_runs_record(secret_task, run_at):
    secret_task.query = "SELECT * FROM orders WHERE customer = {api_key} OR day = {yesterday}"
    secret_task.save()
    run = run_at(secret_task, datetime.datetime(2024, 3, 15, 6, 0))
    assert run.status == "succeeded", log_text(run)
    assert run.rows == 2
    assert "********" in run.query_text and "s3cr3t" not in run.query_text + log_text(run)


def test_the_task_page_include_loads_the_preview(secret_task, rf, member):
    from django.template.loader import render_to_string

    request = rf.get("/")
    request.user = member
    html = render_to_string("tasks/_preview.html", {"task": secret_task}, request=request)
    assert f'action="/tasks/{secret_task.pk}/preview/"' in html and 'id="preview-date"' in html
    # The loader is a static script (the Content-Security-Policy forbids inline ones): the page includes it,
    # and it fetches the preview.
    from django.contrib.staticfiles import finders

    assert '<script src="/static/js/task-preview.js"></script>' in html
    with open(finders.find("js/task-preview.js"), encoding="utf-8") as script:
        assert "fetch(" in script.read()


def test_the_repeated_hour_keeps_its_own_offset_and_absurd_math_is_refused():
    # 2024-10-27 01:30 GMT is the second 01:30 of the night in London.
    moment = datetime.datetime(2024, 10, 27, 1, 30, tzinfo=UTC).astimezone(LONDON)
    assert expand_dates("%H:%M %Z", moment) == "01:30 GMT"
    with pytest.raises(ParameterError, match="outside the years 1 to 9999"):
        expand_dates("%Y-99999", moment)


# --- strict date codes: a mistake is an error, never text passed through to a vendor ----------------------

@pytest.mark.parametrize("text, message", [
    ("report_%Q.csv", r"unknown date code %Q in 'report_%Q.csv'"),
    ("{yesterday:%Q}", r"unknown date code %Q"),
    ("{yesterday:%Y%m%d", r"'\{yesterday:%Y%m%d' .* is not closed"),
    ("orders_{yesterday.csv", r"is not closed"),
    ("holiday_firstday.csv", r"'firstday' in 'holiday_firstday.csv' does not follow a date code"),
    ("lastday_%Y%m.csv", r"'lastday' .* does not follow a date code"),
    ("orders_{yesterdy}.csv", r"Unknown parameter \{yesterdy\}"),
])
def test_a_mistake_in_a_name_fails_the_run_and_the_check(text, message):
    values = {"yesterday": datetime.date(2024, 3, 14), "now": at(2024, 3, 15)}
    with pytest.raises(ParameterError, match=message):
        render(text, values)
    with pytest.raises(ParameterError, match=message):
        parameters.check_text(text, values)


@pytest.mark.parametrize("text, expected", [
    ("100%%_%Y.csv", "100%_2024.csv"),  # %% is a literal percent sign
    ("{yesterday:%Y%m%d}_%Y%m-1lastday.csv", "20240314_20240229.csv"),
    ("echo ${HOME} 50% {yesterday}", "echo ${HOME} 50% 2024-03-14"),  # a % before no letter stays as written
    ("awk '{print $1}'", "awk '{print $1}'"),  # braces that are no placeholder stay as they are
])
def test_correct_names_still_work(text, expected):
    values = {"yesterday": datetime.date(2024, 3, 14), "now": at(2024, 3, 15)}
    parameters.check_text(text, values)
    assert render(text, values) == expected


def test_a_parse_value_with_an_unknown_code_is_an_error(dated_task):
    Parameter.objects.create(task=dated_task, key="start", value="parse(%Y-%q-01)")
    with pytest.raises(ParameterError, match="unknown date code %q"):
        resolve(dated_task, when=at(2024, 3, 15))


def test_the_task_form_refuses_a_bad_name_on_save(dated_task, owner):
    from tasks.forms import TaskForm

    def form(**changes):
        data = {"project": dated_task.project_id, "name": "Daily orders", "run_rank": 1, "source_kind": "query",
                "source_connection": dated_task.source_connection_id, "query": "SELECT 1", "text_location": "inline",
                "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal", "line_terminator": "lf",
                "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail", "file_handling": "as_is",
                "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
                "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "", **changes}
        return TaskForm(data, instance=dated_task, user=owner)

    bad = form(file_name="report_%Q.csv", zip_name="{yesterday:%Y", zip_output="on")
    assert not bad.is_valid()
    assert "unknown date code %Q" in bad.errors["file_name"][0]
    assert "is not closed" in bad.errors["zip_name"][0]
    # A file pattern is a field of the files source kind (the form empties the fields other kinds use).
    files = form(source_kind="files", file_pattern="a_*.csv;holiday_lastday.csv")
    assert not files.is_valid()
    assert "'lastday'" in files.errors["file_pattern"][0]
    unknown = form(file_name="orders_{regoin}.csv")
    assert not unknown.is_valid() and "Unknown parameter {regoin}" in unknown.errors["file_name"][0]
    # A parameter saved with the task in the same form counts as known.
    known = form(file_name="orders_{region}_{yesterday:%Y%m%d}.csv", **{"parameters-0-key": "region"})
    assert known.is_valid(), known.errors

"""Schemathesis against the OpenAPI schema: for the main resources, generated requests never get a 5xx, and every
answer's status is documented for its operation and its body conforms to the schema. The WSGI app runs in
process, on the test database with the access world.

Schemathesis's pytest plugin (`schemathesis.pytest.from_fixture`) fails under pytest 9 (it reads a private
`_nodeid`), so the operations are walked here with Hypothesis directly; pytest.ini leaves both plugins out, and
both libraries are imported by this test only, not by every worker that collects it (about two seconds each).
"""
import pytest

from api.models import ApiToken
from tests.test_access_pages import world, world_rows  # noqa: F401

pytestmark = pytest.mark.django_db
MAIN = r"^/api/v1/(organizations|projects|tasks|connections|runs|files)/"


@pytest.mark.slow  # fuzzes every operation: the fast tier's longest test by far
def test_no_5xx_and_answers_conform_to_the_schema(world):  # noqa: F811
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    # As Django's test client does: the in-process WSGI app must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        _check_every_operation(world)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _check_every_operation(world):  # noqa: F811
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    from etl_portal.wsgi import application

    checked_by = [checks.not_a_server_error, checks.response_schema_conformance, checks.content_type_conformance,
                  checks.status_code_conformance]
    left_out = [checks.positive_data_acceptance, checks.negative_data_rejection, checks.missing_required_header,
                checks.unsupported_method, checks.use_after_free, checks.ensure_resource_availability,
                checks.ignored_auth, checks.response_headers_conformance]

    _, key = ApiToken.issue(world["users"]["coder"], "schemathesis")
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    # DELETE would empty the world for the operations after it; download/resend need stored files.
    operations = schema.include(path_regex=MAIN).exclude(method="DELETE").exclude(path_regex="download|resend")
    checked = []
    for result in operations.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            # No 5xx; every answer's status documented for its operation, its body and type as documented.
            case.call_and_validate(headers=headers, checks=checked_by, excluded_checks=left_out)

        check()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/v1/tasks/bulk/" in checked and len(checked) > 20, checked

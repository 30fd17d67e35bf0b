"""Fuzz the staff inbox API from its own OpenAPI spec (schemathesis) over real HTTP: as a
supervisor, as an admin and with no session at all, whatever is sent, never a server error,
and never anything served without a session."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.inbox_support import login
from tests.test_inbox_web import fresh_ticket
from tests.test_inbox_web import server as server  # noqa: F401  (module fixture: live inbox)


@pytest.fixture(scope="module")
def staff_sessions(server):  # noqa: F811
    fresh_ticket(server, owner="sara")  # some real tickets and tasks for generated ids to hit
    fresh_ticket(server, owner=None)
    return {name: login(server, name) for name in ("sara", "adam")}


@pytest.fixture(scope="module")
def inbox_schema(server):  # noqa: F811
    return schemathesis.openapi.from_url(server.url + "/inbox/api/openapi.json")


schema = schemathesis.pytest.from_fixture("inbox_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_for_staff_or_strangers(case, server, staff_sessions):  # noqa: F811
    for client in staff_sessions.values():
        response = case.call(base_url=server.url, session=client)
        case.validate_response(response, checks=[not_a_server_error])
    stranger = case.call(base_url=server.url)
    case.validate_response(stranger, checks=[not_a_server_error])
    # Refused (401/403), or routed nowhere when a generated id contains "/" (404/405):
    # never served.
    assert stranger.status_code in (401, 403, 404, 405), stranger.status_code

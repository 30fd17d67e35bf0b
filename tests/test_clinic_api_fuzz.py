"""Fuzz the clinic API from its own OpenAPI spec (schemathesis) over real HTTP: whatever a
caller sends, with a valid key or none, the server never answers with a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.test_clinic_api import api as api  # noqa: F401  (module fixture: live server)
from tests.test_clinic_api import book


@pytest.fixture(scope="module")
def api_schema(api):  # noqa: F811
    book(api)  # at least one real appointment, so some generated ids may hit it
    return schemathesis.openapi.from_url(api.url + "/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_with_or_without_a_key(case, api):  # noqa: F811
    for headers in ({"Authorization": f"Bearer {api.all}"}, {}):
        response = case.call(base_url=api.url, headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        if not headers:
            assert response.status_code == 401, response.status_code

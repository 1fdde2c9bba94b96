"""Schemathesis over the OpenAPI document of a real server: no generated request gets a 5xx.

Every operation is called with the admin key (so requests reach the handlers, not just auth),
with generated path, query, header and body values; the SSE stream is left out (it never ends).
"""

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from tests.proximity.service.support import ADMIN, start_server  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("schemathesis"), "--data-dir", "data")
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        yield schema
    finally:
        server.stop()


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1/events/stream")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx(case):
    response = case.call(headers=ADMIN, timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
    assert response.status_code != 500

"""Schemathesis against every service's OpenAPI, on the services running as real processes:
all checks, a fixed seed (derandomize) and a bounded number of examples per operation.

0 server errors and 0 schema violations. Checks left out, and why: see EXCLUDED.
"""

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.robustness.conftest import HEADERS, Process

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 20
PASSWORD = "schemathesis password 123"

#: Checks left out (every other check schemathesis has runs on every operation):
#: - positive_data_acceptance ("a schema-valid request must not get 4xx"). Uploads: OpenAPI types a
#:   file as any bytes, so a "schema-valid" file is random bytes, which must be refused (415/422);
#:   bad files are covered by tests/robustness/test_bad_inputs.py. JSON bodies: rules JSON Schema
#:   does not state are checked by the services and answered 422 in the error shape, found so far:
#:   text POST /predict {"text": ""} (blank text), fusion POST /fuse {} (no modality), gateway
#:   POST /api/register with a password the strength rule refuses. Those schemas could state
#:   minLength / minProperties (reported to their owners); until then the check would fail on them.
EXCLUDED = [positive_data_acceptance]


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _schema(process: Process) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{process.url}/openapi.json", headers=HEADERS)


@pytest.fixture(scope="session")
def speech_schema(processes: dict[str, Process]) -> schemathesis.BaseSchema:
    return _schema(processes["speech"])


@pytest.fixture(scope="session")
def image_schema(processes: dict[str, Process]) -> schemathesis.BaseSchema:
    return _schema(processes["image"])


@pytest.fixture(scope="session")
def text_schema(processes: dict[str, Process]) -> schemathesis.BaseSchema:
    return _schema(processes["text"])


@pytest.fixture(scope="session")
def fusion_schema(processes: dict[str, Process]) -> schemathesis.BaseSchema:
    return _schema(processes["fusion"])


@pytest.fixture(scope="session")
def gateway_schema(processes: dict[str, Process]) -> schemathesis.BaseSchema:
    return _schema(processes["gateway"])


@pytest.fixture(scope="session")
def gateway_auth(processes: dict[str, Process]) -> Iterator[dict[str, str]]:
    """A registered user's bearer token (operations without auth still get it; it is ignored there)."""
    url = processes["gateway"].url
    with httpx.Client(base_url=url, timeout=30) as http:
        user = {"username": "fuzz", "email": "fuzz@example.com", "password": PASSWORD}
        created = http.post("/api/register", json=user)
        assert created.status_code == 201, created.text
        token = http.post("/api/login", data={"username": "fuzz", "password": PASSWORD}).json()["access_token"]
    yield {"Authorization": f"Bearer {token}"}


def _fuzz_operation(operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED, timeout=60)

    run()


def fuzz(schema: schemathesis.BaseSchema, headers: dict[str, str]) -> None:
    """Every operation: MAX_EXAMPLES generated cases, all checks; failures gathered over operations."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _fuzz_operation(operation, headers)
        except Exception as exc:  # noqa: BLE001 - reported with the operation, all operations still run
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)


# schemathesis.pytest.from_fixture needs pytest < 9 (it reads Function._nodeid), so each service's
# operations are run from one test with hypothesis directly.


def test_speech_openapi(speech_schema: schemathesis.BaseSchema) -> None:
    fuzz(speech_schema, HEADERS)


def test_image_openapi(image_schema: schemathesis.BaseSchema) -> None:
    fuzz(image_schema, HEADERS)


def test_text_openapi(text_schema: schemathesis.BaseSchema) -> None:
    fuzz(text_schema, HEADERS)


def test_fusion_openapi(fusion_schema: schemathesis.BaseSchema) -> None:
    fuzz(fusion_schema, HEADERS)


def test_gateway_openapi(gateway_schema: schemathesis.BaseSchema, gateway_auth: dict[str, str]) -> None:
    fuzz(gateway_schema, gateway_auth)

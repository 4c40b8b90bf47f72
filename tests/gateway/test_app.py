"""App surface: OpenAPI (errors, examples, security), docs, web page, probes, error shape."""

import pytest


@pytest.fixture
async def openapi(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def resolve(openapi, schema):
    ref = schema.get("$ref")
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


async def test_every_api_operation_declares_its_errors(openapi):
    for path, method, operation in operations(openapi):
        if not path.startswith("/api"):
            continue
        assert operation.get("operationId"), (path, method)
        assert operation.get("tags"), (path, method)
        errors = {code for code in operation["responses"] if code.startswith(("4", "5"))}
        assert "429" in errors, (path, method)
        for code in errors:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorResponse"), (path, method, code)


async def test_validation_errors_are_documented_with_the_error_shape(openapi):
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    assert "ErrorResponse" in openapi["components"]["schemas"]


#: Operations an API key may not use (a bearer token only); every other protected one takes either.
SESSION_ONLY = {("/api/keys", "get"), ("/api/keys", "post"), ("/api/keys/{key_id}", "delete")} | {
    ("/api/logout", "post"),
    ("/api/logout/all", "post"),
}


async def test_protected_operations_declare_401_and_security(openapi):
    public = {"/api/register", "/api/login", "/api/health/services"}
    for path, method, operation in operations(openapi):
        if path.startswith("/api") and path not in public:
            assert "401" in operation["responses"], (path, method)
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            expected = (
                {"OAuth2PasswordBearer"} if (path, method) in SESSION_ONLY else {"OAuth2PasswordBearer", "APIKeyHeader"}
            )
            assert schemes == expected, (path, method)
            if (path, method) in SESSION_ONLY:
                assert "403" in operation["responses"], (path, method)


async def test_every_request_body_has_examples(openapi):
    for path, method, operation in operations(openapi):
        body = operation.get("requestBody")
        if not body:
            continue
        for media_type, content in body["content"].items():
            schema = resolve(openapi, content["schema"])
            if media_type == "application/json":
                assert schema.get("examples"), (path, method)
            else:  # forms: every non-file field carries an example
                for name, field in schema["properties"].items():
                    is_file = (
                        field.get("format") == "binary"
                        or any(
                            option.get("format") == "binary" or option.get("contentMediaType")
                            for option in field.get("anyOf", [])
                        )
                        or field.get("contentMediaType")
                    )
                    if not is_file and name not in {"grant_type"}:
                        assert field.get("examples"), (path, method, name)


async def test_password_flow_is_wired_for_swagger(openapi):
    scheme = openapi["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/login"
    assert openapi["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


async def test_docs_and_web_page_are_served(client):
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in page.text
    assert "https://" not in page.text  # no CDN (tests/gateway/test_docs.py checks every asset)


async def test_security_headers_and_request_id(client):
    response = await client.get("/api/user/profile", headers={"X-Request-ID": "abc-1"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-request-id"] == "abc-1"
    assert response.json()["request_id"] == "abc-1"


async def test_unknown_route_uses_the_error_shape(client):
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_readyz_and_metrics(client):
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.get("/api/user/profile")
    metrics = await client.get("/metrics")
    counted = [line for line in metrics.text.splitlines() if line.startswith("http_requests_total{")]
    assert any('/user/profile"' in line and 'status="401"' in line for line in counted), counted


async def test_cors_is_configurable(app_client):
    async with app_client(cors_origins=["http://app.example"]) as client:
        response = await client.options(
            "/api/login",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.headers["access-control-allow-origin"] == "http://app.example"
        other = await client.options(
            "/api/login", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers

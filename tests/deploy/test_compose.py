"""docker-compose.yml against the Compose Specification schema, plus what `compose up` would do with it.

compose_spec.json is the Compose Specification JSON schema as shipped by the docker-compose
1.29.2 wheel on PyPI (compose/config/compose_spec.json, Apache-2.0), vendored because tests
never download anything.
"""

import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from starlette.routing import Match

from tests.deploy.buildsim import PORTS, REPO, SERVICES, parse

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
SCHEMA = json.loads((Path(__file__).with_name("compose_spec.json")).read_text())
INFERENCE = ("speech", "text", "image", "fusion", "asr")
#: Services with a micro-batcher (shared/batching.py): MAX_CONCURRENT_BATCHES model calls at once.
BATCHING_SERVICES = ("speech", "text", "image", "fusion")
REQUIRED_SECRETS = {"SECRET_KEY", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "INTERNAL_TOKEN"}
#: Values a user would put into .env for the required (empty in the example) secrets.
FILLED = {
    "SECRET_KEY": "x" * 48,
    "MYSQL_PASSWORD": "db-password",
    "MYSQL_ROOT_PASSWORD": "root-password",
    "INTERNAL_TOKEN": "i" * 48,
}

INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Resolve ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` the way compose does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"]
        current = env.get(name)
        unset_or_empty = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in {"-", ":-"}:
            return arg if unset_or_empty else str(current)
        if op in {"?", ":?"}:
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        if op in {"+", ":+"}:
            return "" if unset_or_empty else arg
        return current or ""

    return INTERPOLATION.sub(replace, value)


def variables(text: str) -> dict[str, str | None]:
    """Every variable the file interpolates, with its operator (``:?``, ``:-``...) if any."""
    return {m["braced"] or m["bare"]: m["op"] for m in INTERPOLATION.finditer(text) if not m["escaped"]}


def example_env() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


@cache
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def config() -> dict[str, Any]:
    """What `docker compose config` would show with the example .env and the secrets filled in."""
    return interpolate(raw(), {**example_env(), **FILLED})


def service(name: str) -> dict[str, Any]:
    return config()["services"][name]


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    for document in (raw(), config()):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_catches_a_broken_file() -> None:
    broken = json.loads(json.dumps(raw()))
    broken["services"]["text"]["depends_on"] = {"redis": {"condition": "service_alive"}}
    broken["services"]["text"]["healthcheck"]["interval"] = ["15s"]
    assert len(list(jsonschema.Draft201909Validator(SCHEMA).iter_errors(broken))) >= 2


def test_every_platform_service_is_defined() -> None:
    assert set(config()["services"]) == {"mysql", "redis", "migrate", *SERVICES}
    assert service("mysql")["image"].startswith("mysql:8")
    assert service("redis")["image"].startswith("redis:")


@pytest.mark.parametrize("secret", sorted(REQUIRED_SECRETS))
def test_required_secrets_refuse_to_start_without_a_value(secret: str) -> None:
    env = {**example_env(), **FILLED}
    for missing in ({k: v for k, v in env.items() if k != secret}, {**env, secret: ""}):
        with pytest.raises(MissingVariable, match=f"{secret}: set {secret} in .env"):
            interpolate(raw(), missing)


def test_only_secrets_are_required_and_the_example_documents_every_variable() -> None:
    used = variables(COMPOSE_FILE.read_text())
    assert {name for name, op in used.items() if op in {"?", ":?"}} == REQUIRED_SECRETS
    example = example_env()
    assert set(used) <= set(example), f"undocumented: {set(used) - set(example)}"
    assert all(example[name] == "" for name in REQUIRED_SECRETS), "the example must not ship usable secrets"


@pytest.mark.parametrize("name", [*SERVICES, "migrate"])
def test_each_service_builds_its_own_image_from_the_dockerfile(name: str) -> None:
    built = "gateway" if name == "migrate" else name
    spec = service(name)
    build = spec["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == (REPO / "deploy" / "Dockerfile")
    assert build["args"] == {"SERVICE": built}
    assert spec["image"] == f"emotion/{built}:latest"


@cache
def service_app(name: str) -> Any:
    """The service's app from its factory (the lifespan, which loads the model, is not run)."""
    return importlib.import_module(f"services.{name}.app").create_app()


def routes_get(app: Any, path: str) -> bool:
    """Whether a GET of ``path`` reaches an endpoint of ``app`` (Starlette's own route matching)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "app": app}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


@pytest.mark.parametrize("name", SERVICES)
def test_healthchecks_probe_an_endpoint_the_service_defines(name: str) -> None:
    check = service(name)["healthcheck"]
    command = " ".join(check["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", command)
    assert check["test"][0] == "CMD" and match, command
    port, path = int(match[1]), match[2]
    assert port == PORTS[name] == int(parse().image(name).env["PORT"])
    assert path == "/readyz"
    app = service_app(name)
    assert routes_get(app, path) and not routes_get(app, path + "-nope")
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)


def test_dependencies_wait_for_health_and_for_the_migration() -> None:
    services = config()["services"]
    gateway = services["gateway"]["depends_on"]
    assert gateway["migrate"] == {"condition": "service_completed_successfully"}
    for name in (*INFERENCE, "redis"):
        assert gateway[name] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"] == {"mysql": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["restart"] == "no"
    for name, spec in services.items():
        for dependency, rule in spec.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{name} waits on {dependency}'s health"


@pytest.mark.parametrize("name", INFERENCE)
def test_inference_services_can_scale(name: str) -> None:
    spec = service(name)
    # A fixed host port or container name makes `docker compose up --scale <name>=3` fail.
    assert "ports" not in spec and "container_name" not in spec and "scale" not in spec
    url = service("gateway")["environment"][f"{name.upper()}_URL"]
    assert url == f"http://{name}:{PORTS[name]}", "the gateway must reach every replica by service name"


def test_gateway_settings_point_at_the_stack() -> None:
    env = service("gateway")["environment"]
    assert service("gateway")["ports"] == ["8000:8000"]
    assert env["DATABASE_URL"] == "mysql+asyncmy://emotion:db-password@mysql:3306/emotion?charset=utf8mb4"
    assert env["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert env["SECRET_KEY"] == FILLED["SECRET_KEY"] and env["ENVIRONMENT"] == "production"
    assert json.loads(env["CORS_ORIGINS"]) == []
    assert service("migrate")["environment"]["DATABASE_URL"] == env["DATABASE_URL"]


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_limited_and_hardened(name: str) -> None:
    spec = service(name)
    limits = spec["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[MG]", limits["memory"])
    env = spec["environment"]
    # One model call uses INFERENCE_THREADS threads; MAX_CONCURRENT_BATCHES calls may run at once.
    assert int(env["INFERENCE_THREADS"]) * int(env.get("MAX_CONCURRENT_BATCHES", 1)) <= float(limits["cpus"])
    if name in BATCHING_SERVICES:
        assert "MAX_CONCURRENT_BATCHES" in env, "set explicitly with the threads it multiplies"
    assert spec["read_only"] is True and spec["tmpfs"] == ["/tmp"]
    assert spec["cap_drop"] == ["ALL"] and "no-new-privileges:true" in spec["security_opt"]
    assert spec["environment"]["ENVIRONMENT"] == "production"


@pytest.mark.parametrize("name", SERVICES)
def test_internal_token_forwarded_headers_and_timeouts_are_explicit(name: str) -> None:
    env = service(name)["environment"]
    assert env["INTERNAL_TOKEN"] == FILLED["INTERNAL_TOKEN"]
    # The gateway's port is published directly: X-Forwarded-For is believed from no one.
    assert env["FORWARDED_ALLOW_IPS"] == ""
    assert float(env["TIMEOUT_KEEP_ALIVE_S"]) > 0
    assert float(env["HEADER_READ_TIMEOUT_S"]) > 0 and float(env["BODY_READ_TIMEOUT_S"]) > 0

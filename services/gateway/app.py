"""The gateway: auth, uploads, fan-out to the inference services, fusion, history, web page.

Run with ``uvicorn --factory services.gateway.app:create_app`` (after ``make migrate``).
"""

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi.routing
from alembic.config import Config
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.db import (
    alembic_config,
    check_migrated,
    create_engine,
    make_sessionmaker,
    ping,
    upgrade,
    wait_for_database,
)
from services.gateway.deps import (
    access_of,
    current_principal,
    end_auth_transaction,
    limit_by_ip,
    require_scope,
    require_session,
)
from services.gateway.docs import CSP_BY_PATH, DASHBOARD_CSP, install_docs
from services.gateway.errors import DatabaseNotMigrated
from services.gateway.fanout import Fanout
from services.gateway.ratelimit import RateLimits
from services.gateway.routes import auth, health, history, keys, predictions
from services.gateway.settings import Settings, get_settings
from services.gateway.writer import PredictionWriter
from shared.http import make_client
from shared.service import create_service_app

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
VERSION = "1.0.0"

DESCRIPTION = """
Multimodal emotion recognition: send text, speech, a face image, or any mix of them, and get
seven emotion probabilities per modality and fused.

**Authenticate** with *Authorize* (username + password) or an `X-API-Key` header
(create one at `POST /api/keys`). Errors always have the shape `{detail, code, request_id}`.
"""

TAGS = [
    {"name": "auth", "description": "Register, log in, log out, profile."},
    {"name": "api keys", "description": "Credentials for backend clients (X-API-Key)."},
    {"name": "predictions", "description": "Emotion predictions; each is saved to your history."},
    {"name": "history", "description": "Your past predictions, statistics and CSV export."},
    {"name": "health", "description": "Probes and downstream service status."},
]


async def _watch_database(app: FastAPI, engine: AsyncEngine, config: Config, interval_s: float) -> None:
    """Keep /readyz honest: not ready while the database is unreachable or behind the code."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await ping(engine)
            await check_migrated(engine, config)
        except DatabaseNotMigrated as exc:
            app.state.ready, app.state.not_ready_reason = False, str(exc)
        except Exception as exc:
            app.state.ready, app.state.not_ready_reason = False, f"database unreachable: {type(exc).__name__}"
            logger.warning("database check failed", exc_info=True)
        else:
            app.state.ready, app.state.not_ready_reason = True, ""


def _api_routes(app: FastAPI) -> list[Any]:
    """Every route as served (FastAPI >= 0.160 keeps included routers whole; older ones copy routes)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(iter_contexts(app.routes)) if iter_contexts is not None else list(app.routes)
    return [r for r in routes if getattr(r, "path_regex", None) is not None and getattr(r, "methods", None)]


def _document_access(app: FastAPI) -> None:
    """Per operation in OpenAPI: bearer only (session routes), or bearer or an API key with its scopes."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        by_operation = {
            (route.path_format, method.lower()): access_of(route.dependant)
            for route in _api_routes(app)
            if getattr(route, "dependant", None) is not None
            for method in route.methods
        }
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                session_only, scopes = by_operation.get((path, method), (False, []))
                if "security" not in operation:
                    continue
                if session_only:
                    operation["security"] = [{"OAuth2PasswordBearer": []}]
                    note = "Needs a bearer token (a user session): API keys are refused (403)."
                elif scopes:
                    # OpenAPI 3.1 lets non-OAuth2 schemes list the roles they need.
                    operation["security"] = [{"OAuth2PasswordBearer": []}, {"APIKeyHeader": scopes}]
                    note = f"API keys need the scope{'s' if len(scopes) > 1 else ''} {', '.join(scopes)}."
                else:
                    continue
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete_allow_on_405(app: FastAPI) -> None:
    """A 405's ``Allow`` lists the methods of every route on that path, not only the first one matched."""
    shared_handler = app.exception_handlers[StarletteHTTPException]

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            path = request.scope.get("path", "")
            methods: set[str] = set()
            for route in _api_routes(app):
                if route.path_regex.match(path):
                    methods |= set(route.methods)
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        response = shared_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, on_http_error)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app (engine, HTTP client and readiness are set up in the lifespan)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout_s=settings.db_pool_timeout_s,
        )
        config = alembic_config(settings.alembic_config, settings.database_url)
        try:
            await wait_for_database(engine, timeout_s=settings.db_connect_timeout_s)
            if settings.auto_migrate:
                await upgrade(engine, config)
            await check_migrated(engine, config)
        except BaseException:
            await engine.dispose()
            raise
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        writer = PredictionWriter(app.state.sessionmaker)
        writer.start()
        app.state.writer = writer
        client = make_client(
            timeout=max(settings.service_timeout(s) for s in ("speech", "text", "image", "fusion")),
            connect_timeout=settings.connect_timeout_s,
            internal_token=settings.internal_token,
            max_connections=settings.upstream_max_connections,
            max_connection_age_s=settings.upstream_connection_max_age_s,
            max_requests_per_connection=settings.upstream_connection_max_requests,
        )
        app.state.http_client = client
        app.state.fanout = Fanout(client, settings)
        app.state.ready, app.state.not_ready_reason = True, ""
        watcher = asyncio.create_task(_watch_database(app, engine, config, settings.db_check_interval_s))
        try:
            yield
        finally:
            app.state.ready, app.state.not_ready_reason = False, "shutting down"
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await writer.close()
            await client.aclose()
            await engine.dispose()

    app = create_service_app(
        name="gateway",
        title="Emotion recognition gateway",
        description=DESCRIPTION,
        version=VERSION,
        settings=settings,
        lifespan=lifespan,
        openapi_tags=TAGS,
        csp=DASHBOARD_CSP,
        csp_by_path=CSP_BY_PATH,
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(settings)

    public = [Depends(limit_by_ip)]
    protected = [Depends(limit_by_ip), Depends(current_principal)]
    session_only = [*protected, Depends(require_session)]
    app.include_router(auth.public_router, prefix="/api", dependencies=public)
    app.include_router(health.router, prefix="/api", dependencies=public)
    app.include_router(auth.router, prefix="/api", dependencies=protected)
    app.include_router(auth.session_router, prefix="/api", dependencies=session_only)
    app.include_router(keys.router, prefix="/api", dependencies=session_only)
    app.include_router(
        predictions.router,
        prefix="/api",
        dependencies=[*protected, Depends(require_scope("predict")), Depends(end_auth_transaction)],
    )
    app.include_router(history.router, prefix="/api", dependencies=[*protected, Depends(require_scope("history:read"))])
    _complete_allow_on_405(app)

    install_docs(app)  # self-hosted Swagger UI and ReDoc instead of FastAPI's CDN pages
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _document_access(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app

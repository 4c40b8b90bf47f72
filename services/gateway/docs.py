"""Self-hosted API docs: Swagger UI and ReDoc served by the gateway itself, no CDN.

The assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc bundles); the pages
are ours and carry no inline script, so they work under a strict Content-Security-Policy.
See https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/ ("self-hosting JavaScript and CSS").
"""

import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from shared.errors import error_response

DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
OAUTH2_REDIRECT_URL: Final = "/docs/oauth2-redirect"
ASSETS_URL: Final = "/docs/assets"
#: The only files served from the package's folder (no directory listing, no traversal).
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
#: The assets change only with the package version: let browsers keep them for a day.
ASSET_CACHE_CONTROL: Final = "public, max-age=86400"

_FRAMING: Final = "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
#: The dashboard at / (and the API): its own files only, plus blob: to preview a picked or recorded file.
DASHBOARD_CSP: Final = f"default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; {_FRAMING}"
#: Swagger UI and ReDoc, self-hosted: no CDN; their bundles add inline styles, ReDoc runs a blob: worker.
DOCS_CSP: Final = (
    f"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; {_FRAMING}"
)
#: FastAPI's OAuth2 redirect page is one inline script (only authorization-code flows use it).
OAUTH2_REDIRECT_CSP: Final = DOCS_CSP.replace(
    "default-src 'self';", "default-src 'self'; script-src 'self' 'unsafe-inline';"
)
#: ``csp_by_path`` for create_service_app: the docs pages' own policies.
CSP_BY_PATH: Final = {DOCS_URL: DOCS_CSP, REDOC_URL: DOCS_CSP, OAUTH2_REDIRECT_URL: OAUTH2_REDIRECT_CSP}


def assets_dir() -> Path:
    """Where ``fastapi-offline`` keeps Swagger UI's and ReDoc's files."""
    return Path(str(files("fastapi_offline") / "static"))


def _page(*, title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="icon" type="image/png" href="{ASSETS_URL}/favicon.png">{head}</head>'
        f"<body>{body}</body></html>"
    )


def docs_router(app: FastAPI) -> APIRouter:
    """``/docs`` (Swagger UI, with a working Authorize button), ``/redoc`` and their assets."""
    router = APIRouter(include_in_schema=False)

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @router.get(DOCS_URL)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        config = {
            "url": openapi_url(request),
            "oauth2RedirectUrl": f"{root}{OAUTH2_REDIRECT_URL}",
            **(app.swagger_ui_parameters or {}),
        }
        return _page(
            title=f"{app.title} - Swagger UI",
            head=f'<link rel="stylesheet" href="{root}{ASSETS_URL}/swagger-ui.css">',
            body=(
                f"<div id=\"swagger-ui\" data-config='{html.escape(json.dumps(config), quote=True)}'></div>"
                f'<script src="{root}{ASSETS_URL}/swagger-ui-bundle.js"></script>'
                f'<script src="{root}/static/docs/swagger-init.js"></script>'
            ),
        )

    @router.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_redirect() -> HTMLResponse:
        # Only the authorization-code/implicit flows use it; this API's password flow does not.
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_URL)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        # ReDoc's standalone bundle renders every <redoc spec-url> element by itself: no inline script.
        return _page(
            title=f"{app.title} - ReDoc",
            head="",
            body=(
                f'<redoc spec-url="{html.escape(openapi_url(request))}"></redoc>'
                f'<script src="{root}{ASSETS_URL}/redoc.standalone.js"></script>'
            ),
        )

    @router.get(ASSETS_URL + "/{name}", response_model=None)
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            return error_response(404, "Not Found")
        return FileResponse(assets_dir() / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE_CONTROL})

    return router


def install_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed /docs and /redoc pages with the self-hosted ones."""
    cdn_pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in cdn_pages]
    app.docs_url = app.redoc_url = None
    app.include_router(docs_router(app))

"""Self-hosted docs and dashboard assets: everything the pages load is served by the gateway."""

import re

import pytest

from services.gateway.docs import ASSETS

ASSET_REF = re.compile(r'(?:src|href)="([^"]+)"')
JS_IMPORT = re.compile(r'^import .* from "(\./[^"]+)";$', re.MULTILINE)


def local_refs(html: str) -> list[str]:
    refs = ASSET_REF.findall(html)
    assert refs
    return refs


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets_and_no_inline_script(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "cdn" not in response.text.lower() and "https://" not in response.text
    # No inline script: every <script> has a src, so a strict script-src 'self' policy allows the page.
    assert response.text.count("<script") == response.text.count("<script src=")
    for ref in local_refs(response.text):
        assert ref.startswith("/"), ref
        asset = await client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 500, ref


async def test_swagger_page_points_at_the_openapi_document(client):
    page = (await client.get("/docs")).text
    assert "&quot;url&quot;: &quot;/openapi.json&quot;" in page
    assert (await client.get("/openapi.json")).status_code == 200


async def test_only_the_listed_docs_assets_are_served(client):
    for name in ASSETS:
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 200
        assert "max-age" in response.headers["cache-control"]
    for name in ("core.py", "..%2F__init__.py", "nope.js"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


async def test_fastapis_cdn_pages_are_replaced(client):
    assert client.app.docs_url is None and client.app.redoc_url is None
    assert "/static/docs/swagger-init.js" in (await client.get("/docs")).text
    assert "redoc.standalone.js" in (await client.get("/redoc")).text


async def test_dashboard_loads_only_local_assets_and_every_module_exists(client):
    page = (await client.get("/")).text
    assert "style=" not in page and "<script>" not in page  # CSP: no inline styles or scripts
    seen, queue = set(), [ref for ref in local_refs(page) if ref.endswith((".js", ".css"))]
    while queue:
        ref = queue.pop()
        if ref in seen:
            continue
        seen.add(ref)
        response = await client.get(ref)
        assert response.status_code == 200, ref
        if ref.startswith("/static/js/"):
            assert "http://" not in response.text and "https://" not in response.text, ref
            queue += [f"/static/js/{name[2:]}" for name in JS_IMPORT.findall(response.text)]
    assert {"/static/js/main.js", "/static/js/api.js", "/static/vendor/chart.js/chart.umd.min.js"} <= seen
    assert len([ref for ref in seen if ref.startswith("/static/js/")]) >= 10


async def test_content_security_policies_allow_nothing_remote(client):
    page = (await client.get("/")).headers["content-security-policy"]
    assert page.startswith("default-src 'self';")
    assert "unsafe-inline" not in page and "unsafe-eval" not in page
    assert "img-src 'self' blob:" in page and "media-src 'self' blob:" in page  # previews of picked files
    for path in ("/docs", "/redoc"):
        policy = (await client.get(path)).headers["content-security-policy"]
        assert "http" not in policy and "script-src" not in policy  # scripts: 'self' only (default-src)
    api = (await client.get("/api/user/profile")).headers["content-security-policy"]
    assert api == page

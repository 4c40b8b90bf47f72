"""The API keys page, and /docs + /redoc working with no network (Authorize included)."""

import re

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, login


def test_api_key_is_shown_once_copied_listed_and_revoked(page, stack, shot):
    username, _ = stack.register("keys")
    login(page, username)
    page.get_by_role("button", name="API keys").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    page.get_by_label("Name of the new key").fill("   ")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#key-status")).to_have_text("Give the key a name first.")

    page.get_by_label("Name of the new key").fill("ci-bot")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_be_visible()
    key = page.locator("#new-key-value").input_value()
    assert len(key) > 20
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#new-key-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator("#keys-rows tr", has_text="ci-bot")
    prefix = row.locator("code").inner_text()
    assert key.startswith(prefix)
    expect(row.locator("td[data-label=State]")).to_contain_text("active")
    if page.locator("#key-scopes").is_visible():  # gateways with key scopes: least privilege by default
        expect(row.locator("td[data-label=State]")).to_have_text("active (predict, history:read)")
    shot(page, "20-api-key-created")

    # The key works as X-API-Key until it is revoked.
    assert httpx.get(f"{stack.url}/api/predictions", headers={"X-API-Key": key}).status_code == 200
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#new-key")).to_be_hidden()
    assert page.locator("#new-key-value").input_value() == ""
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#confirm-text")).to_contain_text('Revoke the key "ci-bot"')
    page.locator("#confirm-ok").click()
    expect(page.locator("#keys-status")).to_have_text('Key "ci-bot" revoked.')
    expect(row.locator("td[data-label=State]")).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert httpx.get(f"{stack.url}/api/predictions", headers={"X-API-Key": key}).status_code == 401
    assert key not in page.content()
    shot(page, "21-api-key-revoked")

    # Leaving the page also forgets a new key's secret: it is shown once.
    page.get_by_label("Name of the new key").fill("second")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#key-status")).to_have_text('Key "second" created.')
    second = page.locator("#new-key-value").input_value()
    assert second.startswith("emo_")
    page.get_by_role("button", name="Dashboard").click()
    page.get_by_role("button", name="API keys").click()
    expect(page.locator("#new-key")).to_be_hidden()
    assert second not in page.content()


def test_docs_render_and_authorize_works_with_no_network(page, stack, watch, shot):
    username, _ = stack.register("docs")
    # ReDoc's bundle hard-codes its sidebar logo from cdn.redoc.ly; the /redoc policy (img-src 'self'
    # data:) stops it inside the browser, so it never reaches the network (checked below), and
    # ReDoc hides the broken image. That CSP report is the only console error allowed here.
    watch.allowed_console.append("https://cdn.redoc.ly/redoc/logo-mini.svg")
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Emotion recognition gateway")
    expect(page.locator("#operations-auth-get_profile")).to_be_visible()

    page.locator(".swagger-ui .auth-wrapper .authorize").click()
    page.locator("#oauth_username").fill(username)
    page.locator("#oauth_password").fill(PASSWORD)
    page.locator(".auth-btn-wrapper .authorize").first.click()
    expect(page.get_by_role("button", name="Logout").first).to_be_visible()
    shot(page, "30-docs-authorized")
    page.locator(".auth-btn-wrapper .btn-done").first.click()

    page.locator("#operations-auth-get_profile .opblock-summary").click()
    page.locator("#operations-auth-get_profile .try-out__btn").click()
    page.locator("#operations-auth-get_profile .execute").click()
    response = page.locator("#operations-auth-get_profile .live-responses-table .response .microlight").first
    expect(response).to_contain_text(f'"username": "{username}"')
    shot(page, "31-docs-try-it-out")

    page.goto("/redoc")
    expect(page.locator("h1").first).to_contain_text(re.compile("Emotion recognition gateway"))
    expect(page.get_by_text("Create an account").first).to_be_attached()
    shot(page, "32-redoc", full_page=False)  # ReDoc's page is very long

    assert watch.remote_requests == []  # nothing but 127.0.0.1 was even attempted (the context fixture also checks)

"""Statistics charts, history paging/filters/show/delete, CSV export, logout privacy, narrow screens."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.browser.media import file_payload, png

DATA_SUM = """sel => window.Chart.getChart(document.querySelector(sel))
                   .data.datasets.flatMap(d => d.data).reduce((a, b) => a + b, 0)"""
EMOTION_COUNTS = """sel => { const c = window.Chart.getChart(document.querySelector(sel));
                             const values = c.data.datasets[0].data;
                             return Object.fromEntries(c.data.labels.map((l, i) => [l, values[i]])); }"""


def predict_texts(stack, token: str, texts: list[str]) -> None:
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}) as client:
        for text in texts:
            assert client.post("/api/predict/text", json={"text": text}).status_code == 200


def test_statistics_history_paging_filters_show_delete_and_csv(page, stack, shot):
    username, token = stack.register("hist")
    predict_texts(stack, token, ["I love it"] * 7 + ["I am so sad"] * 5)
    login(page, username)

    # Statistics: three charts drawn from /api/statistics, with their numbers in text too.
    expect(page.locator("#stats-total")).to_have_text("12 predictions match the filters.")
    assert page.evaluate(EMOTION_COUNTS, "#chart-emotions") == {
        "angry": 0,
        "disgust": 0,
        "fear": 0,
        "happy": 7,
        "sad": 5,
        "surprise": 0,
        "neutral": 0,
    }
    assert page.evaluate(DATA_SUM, "#chart-days") == 12
    assert page.evaluate(DATA_SUM, "#chart-modalities") == 12  # text only: 12, speech 0, image 0
    expect(page.locator("#chart-emotions-text")).to_have_text("By emotion: happy 7, sad 5.")
    shot(page, "10-statistics-and-history")

    # Paging: 10 per page, newest first.
    expect(page.locator("#history-rows tr")).to_have_count(10)
    expect(page.locator("#page-info")).to_have_text("Page 1 of 2 (1–10 of 12)")
    expect(page.locator("#page-prev")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2 (11–12 of 12)")
    expect(page.locator("#history-rows tr")).to_have_count(2)
    expect(page.locator("#page-next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#page-info")).to_have_text("Page 1 of 2 (1–10 of 12)")

    # Filters apply to the charts and the history alike.
    page.get_by_label("Emotion", exact=True).select_option("sad")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#stats-total")).to_have_text("5 predictions match the filters.")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 1 (1–5 of 5)")
    expect(page.locator("#history-rows td[data-label=Label]")).to_have_text(["sad"] * 5)
    assert page.evaluate(EMOTION_COUNTS, "#chart-emotions")["happy"] == 0
    shot(page, "11-filtered-sad")

    # CSV export of the filtered rows, fetched with the token in a header (never in the URL).
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert re.fullmatch(r"predictions-\d{8}\.csv", download.value.suggested_filename)
    assert "token" not in download.value.url
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [r["label"] for r in rows] == ["sad"] * 5
    expect(page.locator("#history-status")).to_have_text("CSV downloaded.")

    # A date range with nothing in it; a reversed range is refused next to the filters.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    today = datetime.now(UTC).date().isoformat()
    page.get_by_label("From", exact=True).fill(tomorrow)
    page.get_by_label("To", exact=True).fill(today)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#filters-status")).to_have_text("The 'From' date must not be after the 'To' date.")
    page.get_by_label("To", exact=True).fill("")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#stats-total")).to_have_text("0 predictions match the filters.")
    expect(page.locator("#history-empty")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#stats-total")).to_have_text("12 predictions match the filters.")

    # Show: the stored prediction opens in the result panel, scrolled to and highlighted.
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2 (11–12 of 12)")
    oldest = page.locator("#history-rows tr").last
    oldest_id = oldest.get_attribute("data-id")
    oldest.get_by_role("button", name="Show").click()
    result = page.locator(f'#result .result[data-id="{oldest_id}"]')
    expect(result).to_be_in_viewport()
    expect(result).to_have_class(re.compile("highlight"))
    expect(result.locator(".result-head .label")).to_have_text("happy")
    expect(oldest).to_have_class(re.compile("highlight"))
    shot(page, "12-show-from-history")

    # Delete asks first; Cancel keeps the row, Delete removes it and updates the statistics.
    oldest.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("Delete the text prediction")
    shot(page, "13-delete-confirmation")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice first
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    expect(page.locator("#history-rows tr")).to_have_count(2)
    oldest.get_by_role("button", name="Delete").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#history-status")).to_have_text("Prediction deleted.")
    expect(page.locator("#stats-total")).to_have_text("11 predictions match the filters.")
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2 (11–11 of 11)")
    expect(page.locator(f'#result .result[data-id="{oldest_id}"]')).to_have_count(0)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack.url}/api/predictions/{oldest_id}", headers=headers).status_code == 404


def test_logout_clears_everything_and_the_next_user_sees_nothing(page, stack, shot):
    first, _ = stack.register("first")
    second, _ = stack.register("second")
    login(page, first)
    page.get_by_label("Text", exact=True).fill("alpha secret sentence, I love it")
    page.get_by_role("button", name="Predict text").click()
    expect(page.locator("#result .result-head .label")).to_have_text("happy")
    page.locator("#image-file").set_input_files(file_payload("first.png", "image/png", png()))
    page.get_by_label("Emotion", exact=True).select_option("happy")
    page.get_by_role("button", name="API keys").click()
    page.get_by_label("Name of the new key").fill("first-key")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_be_visible()
    page.get_by_role("button", name="Dashboard").click()
    expect(page.locator("#history-rows tr")).to_have_count(1)

    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.locator("#login-status")).to_have_text("You are logged out.")
    expect(page.locator("#dashboard-view")).to_be_hidden()
    state = page.evaluate(
        """() => ({
            storage: sessionStorage.length,
            text: document.querySelector('#text-input').value,
            emotion: document.querySelector('#filter-emotion').value,
            image: document.querySelector('#image-file').files.length,
            previews: document.querySelectorAll('.preview *').length,
            result: document.querySelector('#result').children.length,
            rows: document.querySelectorAll('#history-rows tr, #keys-rows tr').length,
            charts: ['#chart-emotions', '#chart-days', '#chart-modalities']
                .filter(s => window.Chart.getChart(document.querySelector(s))).length,
            newKey: document.querySelector('#new-key-value').value,
        })"""
    )
    assert state == {
        "storage": 0,
        "text": "",
        "emotion": "",
        "image": 0,
        "previews": 0,
        "result": 0,
        "rows": 0,
        "charts": 0,
        "newKey": "",
    }
    html = page.content()
    assert "alpha secret" not in html and first not in html

    login(page, second)
    expect(page.locator("#stats-total")).to_have_text("0 predictions match the filters.")
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#result-section")).to_be_hidden()
    page.get_by_role("button", name="API keys").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    html = page.content()
    assert "alpha secret" not in html and first not in html and "first-key" not in html
    shot(page, "14-second-user-sees-nothing")


def test_a_revoked_session_sends_the_page_back_to_login(page, stack):
    username, _ = stack.register()
    login(page, username)
    token = page.evaluate("() => sessionStorage.getItem('emotion.token')")
    assert httpx.post(f"{stack.url}/api/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#login-status")).to_have_text("Your session has ended. Please log in again.")
    expect(page.locator("#dashboard-view")).to_be_hidden()


def test_usable_at_390_px_without_sideways_scrolling(page, stack, shot):
    username, token = stack.register("narrow")
    predict_texts(stack, token, ["I love it", "so sad"])
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, username)
    expect(page.locator("#history-rows tr")).to_have_count(2)
    page.locator("#history-rows tr").first.get_by_role("button", name="Show").click()
    expect(page.locator("#result .result")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label'))
                 .map(e => e.id || e.name)"""
    )
    assert unlabelled == []
    shot(page, "15-narrow-dashboard")
    page.get_by_role("button", name="API keys").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.locator("#login-status")).to_have_text("You are logged out.")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Keyboard: the login form is reachable and submits with Enter.
    page.locator("#login-username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_have_text(f"Signed in as {username}")


def test_log_out_everywhere_ends_the_session_in_another_tab(context, page, stack):
    if httpx.get(f"{stack.url}/openapi.json").json()["paths"].get("/api/logout/all") is None:
        pytest.skip("this gateway has no 'log out everywhere'")
    username, _ = stack.register()
    login(page, username)
    other = context.new_page()
    login(other, username)
    page.get_by_role("button", name="Log out everywhere").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#login-status")).to_have_text("You are logged out everywhere.")
    other.get_by_role("button", name="Refresh").click()
    expect(other.locator("#login-status")).to_have_text("Your session has ended. Please log in again.")

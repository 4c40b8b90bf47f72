"""History: pagination, filters, ownership (IDOR), deletion, statistics and CSV export."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.errors import PREDICTION_NOT_FOUND
from services.gateway.export import neutralise
from services.gateway.models import Prediction
from tests.gateway.factories import auth_headers, probabilities

DAY1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)


async def add_prediction(client, user_id: int, *, kind: str, label: str | None, created_at: datetime, **extra) -> int:
    """Insert a stored prediction directly (history tests need controlled dates)."""
    modalities = ("speech", "text", "image") if kind == "multimodal" else (kind,)
    row = Prediction(
        user_id=user_id,
        kind=kind,
        has_speech="speech" in modalities,
        has_text="text" in modalities,
        has_image="image" in modalities,
        label=label,
        probabilities=probabilities(label) if label else None,
        modality_results={m: {"status": "ok", "label": label} for m in modalities},
        model_versions=dict.fromkeys(modalities, "m@1"),
        latencies_ms={"total": 12.5},
        created_at=created_at,
        **extra,
    )
    async with client.app.state.sessionmaker() as session:
        session.add(row)
        await session.commit()
    return row.id


async def user_id(client, headers) -> int:
    return (await client.get("/api/user/profile", headers=headers)).json()["id"]


@pytest.fixture
async def history(client):
    """Alice with five predictions over two days, Bob with one."""
    alice = await auth_headers(client, "alice")
    bob = await auth_headers(client, "bob")
    a, b = await user_id(client, alice), await user_id(client, bob)
    ids = [
        await add_prediction(client, a, kind="text", label="happy", created_at=DAY1),
        await add_prediction(client, a, kind="speech", label="sad", created_at=DAY1 + timedelta(hours=1)),
        await add_prediction(client, a, kind="image", label=None, created_at=DAY1 + timedelta(hours=2)),
        await add_prediction(client, a, kind="multimodal", label="happy", created_at=DAY2),
        await add_prediction(client, a, kind="text", label="angry", created_at=DAY2 + timedelta(minutes=10)),
    ]
    bobs = await add_prediction(client, b, kind="text", label="fear", created_at=DAY2)
    return {"alice": alice, "bob": bob, "ids": ids, "bobs": bobs}


async def test_list_is_newest_first_and_paginated(client, history):
    page = await client.get("/api/predictions?limit=2&offset=0", headers=history["alice"])
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert [item["id"] for item in body["items"]] == history["ids"][::-1][:2]
    assert (body["limit"], body["offset"]) == (2, 0)
    rest = (await client.get("/api/predictions?limit=2&offset=4", headers=history["alice"])).json()
    assert [item["id"] for item in rest["items"]] == [history["ids"][0]]
    assert rest["total"] == 5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("modality=text", [4, 3, 0]),
        ("modality=speech", [3, 1]),
        ("modality=multimodal", [3]),
        ("emotion=happy", [3, 0]),
        ("from=2026-11-21T00:00:00Z", [4, 3]),
        ("to=2026-11-20T10:30:00Z", [0]),
        ("from=2026-11-20T10:30:00Z&to=2026-11-22T23:30:00Z", [3, 2, 1]),
        ("modality=text&emotion=angry", [4]),
        # A date alone: 'from' starts that day, 'to' includes all of it; an explicit midnight does not.
        ("to=2026-11-20", [2, 1, 0]),
        ("from=2026-11-22&to=2026-11-22", [4, 3]),
        ("to=2026-11-20T00:00:00Z", []),
        ("to=2026-11-21", [2, 1, 0]),
    ],
)
async def test_filters(client, history, query, expected):
    body = (await client.get(f"/api/predictions?{query}", headers=history["alice"])).json()
    assert [item["id"] for item in body["items"]] == [history["ids"][i] for i in expected]
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "offset=-1",
        "emotion=bored",
        "modality=smell",
        "from=yesterday",
        "from=2026-11-22&to=2026-11-21",
    ],
)
async def test_bad_query_is_422(client, history, query):
    response = await client.get(f"/api/predictions?{query}", headers=history["alice"])
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_users_only_see_their_own(client, history):
    bob_list = (await client.get("/api/predictions", headers=history["bob"])).json()
    assert [item["id"] for item in bob_list["items"]] == [history["bobs"]]
    own = await client.get(f"/api/predictions/{history['bobs']}", headers=history["bob"])
    assert own.status_code == 200


async def test_another_users_prediction_is_404_on_get_and_delete(client, history):
    target = history["ids"][0]
    got = await client.get(f"/api/predictions/{target}", headers=history["bob"])
    assert got.status_code == 404
    assert got.json()["detail"] == PREDICTION_NOT_FOUND
    deleted = await client.delete(f"/api/predictions/{target}", headers=history["bob"])
    assert deleted.status_code == 404
    # Not deleted: the owner still has it.
    assert (await client.get(f"/api/predictions/{target}", headers=history["alice"])).status_code == 200


async def test_missing_prediction_is_404_like_a_foreign_one(client, history):
    missing = await client.get("/api/predictions/999999", headers=history["alice"])
    foreign = await client.get(f"/api/predictions/{history['bobs']}", headers=history["alice"])
    assert missing.status_code == foreign.status_code == 404
    assert missing.json()["detail"] == foreign.json()["detail"]


async def test_delete_own_prediction(client, history):
    target = history["ids"][1]
    assert (await client.delete(f"/api/predictions/{target}", headers=history["alice"])).status_code == 204
    assert (await client.get(f"/api/predictions/{target}", headers=history["alice"])).status_code == 404
    assert (await client.delete(f"/api/predictions/{target}", headers=history["alice"])).status_code == 404
    assert (await client.get("/api/predictions", headers=history["alice"])).json()["total"] == 4


async def test_statistics(client, history):
    response = await client.get("/api/statistics", headers=history["alice"])
    assert response.status_code == 200
    stats = response.json()
    assert stats["total"] == 5
    assert stats["by_emotion"]["happy"] == 2
    assert stats["by_emotion"]["sad"] == 1
    assert stats["by_emotion"]["angry"] == 1
    assert stats["by_emotion"]["fear"] == 0  # Bob's does not count
    assert stats["by_emotion"]["none"] == 1
    assert stats["by_kind"] == {"speech": 1, "text": 2, "image": 1, "multimodal": 1}
    assert stats["by_modality"] == {"speech": 2, "text": 3, "image": 2}
    assert stats["per_day"] == [
        {"date": "2026-11-20", "total": 3, "by_emotion": {"happy": 1, "sad": 1, "none": 1}},
        {"date": "2026-11-22", "total": 2, "by_emotion": {"happy": 1, "angry": 1}},
    ]
    filtered = (await client.get("/api/statistics?from=2026-11-21T00:00:00Z", headers=history["alice"])).json()
    assert filtered["total"] == 2


async def test_statistics_of_a_new_user_are_zero(client):
    headers = await auth_headers(client, "carol")
    stats = (await client.get("/api/statistics", headers=headers)).json()
    assert stats["total"] == 0
    assert stats["per_day"] == []
    assert set(stats["by_emotion"].values()) == {0}


async def test_csv_export(client, history):
    response = await client.get("/api/predictions/export.csv", headers=history["alice"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["id"]) for r in rows] == history["ids"][::-1]
    assert rows[-1]["label"] == "happy"
    assert float(rows[-1]["p_happy"]) == pytest.approx(0.7)
    assert rows[-1]["kind"] == "text"
    filtered = await client.get("/api/predictions/export.csv?emotion=happy", headers=history["alice"])
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 2


async def test_csv_export_needs_auth_and_is_not_taken_for_an_id(client, history):
    assert (await client.get("/api/predictions/export.csv")).status_code == 401
    other = await client.get("/api/predictions/export.csv", headers=history["bob"])
    assert other.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(other.text)))) == 1


async def test_csv_export_neutralises_formulas(client, upstream):
    headers = await auth_headers(client)
    # A hostile (or compromised) fusion service answers with an error code that is a formula.
    formula = '=HYPERLINK("http://evil.test","x")'
    upstream.routes["fusion"].respond(503, json={"detail": "down", "code": formula})
    response = await client.post("/api/predict/multimodal", data={"text": "hi"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["fusion_error"]["code"] == formula
    export = await client.get("/api/predictions/export.csv", headers=headers)
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert rows[0]["fusion_error"] == "'" + formula
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("happy", "happy"),
        (3, 3),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected

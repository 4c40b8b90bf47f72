"""Concurrent /predict calls share model calls through the batcher, each getting its own answer."""

import asyncio

import httpx
import numpy as np
from fastapi import FastAPI
from prometheus_client import generate_latest

from shared.batching import BatcherConfig
from shared.labels import LABELS

TEXTS = [
    "I am so happy today!",
    "This makes me furious.",
    "I'm scared of the dark.",
    "What a lovely surprise!",
    "I feel so sad and alone.",
    "The bus leaves at nine.",
]


def _batch_sizes(app: FastAPI) -> tuple[float, float]:
    text = generate_latest(app.state.metrics.registry).decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("inference_batch_size_sum", "inference_batch_size_count")):
            values[line.split("{")[0]] = float(line.split()[-1])
    return values.get("inference_batch_size_sum", 0.0), values.get("inference_batch_size_count", 0.0)


async def test_concurrent_requests_are_batched_and_answered_individually(
    text_app: FastAPI, client: httpx.AsyncClient
) -> None:
    batcher = text_app.state.batcher
    original = batcher.config
    batcher.config = BatcherConfig(max_batch_size=original.max_batch_size, max_wait_ms=300, max_queue=64)
    try:
        before = _batch_sizes(text_app)
        responses = await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in TEXTS[:4]))
        after = _batch_sizes(text_app)
    finally:
        batcher.config = original
    assert [r.status_code for r in responses] == [200] * 4
    items, calls = after[0] - before[0], after[1] - before[1]
    assert items == 4 and calls < 4  # at least two requests shared a model call
    for text, response in zip(TEXTS, responses, strict=False):
        alone = (await client.post("/predict", json={"text": text})).json()
        got = response.json()
        assert got["label"] == alone["label"]
        np.testing.assert_allclose(
            [got["probabilities"][k] for k in LABELS], [alone["probabilities"][k] for k in LABELS], atol=1e-5
        )


async def test_a_bad_text_among_concurrent_ones_fails_alone(client: httpx.AsyncClient) -> None:
    bodies = [{"text": TEXTS[0]}, {"text": "   "}, {"text": TEXTS[1]}]
    responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert [r.status_code for r in responses] == [200, 422, 200]
    assert responses[1].json()["code"] == "empty_text"


async def test_a_full_queue_answers_503_with_retry_after(text_app: FastAPI, client: httpx.AsyncClient) -> None:
    batcher = text_app.state.batcher
    original = batcher.config
    # One item at a time, at most one queued: of four simultaneous requests some must be refused.
    batcher.config = BatcherConfig(max_batch_size=1, max_wait_ms=0, max_queue=1)
    try:
        responses = await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in TEXTS))
    finally:
        batcher.config = original
    statuses = [r.status_code for r in responses]
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["code"] == "overloaded"


async def test_a_model_failure_answers_500_in_the_error_shape_and_the_next_batch_works(
    text_app: FastAPI, client: httpx.AsyncClient
) -> None:
    batcher = text_app.state.batcher
    original = batcher.fn

    def broken(texts: list[str]) -> list[object]:
        raise RuntimeError("onnxruntime exploded")

    batcher.fn = broken
    try:
        response = await client.post("/predict", json={"text": TEXTS[0]})
    finally:
        batcher.fn = original
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "inference_failed" and "exploded" not in body["detail"] and body["request_id"]
    assert (await client.post("/predict", json={"text": TEXTS[0]})).status_code == 200

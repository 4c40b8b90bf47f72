"""Faces of concurrent requests share one forward pass; a bad image among them fails alone."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.image.conftest import _client, make_settings


@pytest.fixture(scope="module")
async def patient_client() -> AsyncIterator[httpx.AsyncClient]:
    # A long batching window, always waited out, so that concurrent requests deterministically share one call.
    async for c in _client(make_settings(max_batch_wait_ms=1500, max_batch_size=16, batch_wait_adaptive=False)):
        yield c


def _batch_counters(metrics_text: str) -> tuple[float, float]:
    values = {
        line.split("{")[0]: float(line.split()[-1])
        for line in metrics_text.splitlines()
        if line.startswith(("inference_batch_size_sum", "inference_batch_size_count"))
    }
    return values.get("inference_batch_size_sum", 0.0), values.get("inference_batch_size_count", 0.0)


async def test_every_face_of_concurrent_requests_is_classified_in_one_pass(
    patient_client: httpx.AsyncClient, face_jpeg: bytes, two_faces_png: bytes
) -> None:
    before = _batch_counters((await patient_client.get("/metrics")).text)
    uploads = [face_jpeg, two_faces_png, face_jpeg]
    responses = await asyncio.gather(
        *(patient_client.post("/predict", files={"image": ("x", data)}) for data in uploads)
    )
    after = _batch_counters((await patient_client.get("/metrics")).text)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [len(r.json()["faces"]) for r in responses] == [1, 2, 1]
    assert after[0] - before[0] == 4  # four crops ...
    assert after[1] - before[1] == 1  # ... in one model call
    # Each caller got its own faces' answers: identical uploads, identical results.
    assert responses[0].json()["probabilities"] == responses[2].json()["probabilities"]


async def test_a_corrupt_image_among_concurrent_ones_fails_alone(
    patient_client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    uploads = [face_jpeg, face_jpeg[:200], face_jpeg]
    responses = await asyncio.gather(
        *(patient_client.post("/predict", files={"image": ("x", data)}) for data in uploads)
    )
    assert [r.status_code for r in responses] == [200, 422, 200]
    assert responses[0].json()["label"] == responses[2].json()["label"]

"""HTTP behaviour of the image service: formats, faces, errors, batch, readiness."""

from pathlib import Path

import httpx
import pytest

from services.image.errors import CORRUPT_IMAGE, NO_FACE_MESSAGE, NOT_AN_IMAGE
from shared.labels import LABELS
from tests.image.conftest import encode
from tests.image.synth import face_image, landscape_image


def upload(data: bytes, name: str = "face.jpg", content_type: str = "image/jpeg") -> dict[str, tuple[str, bytes, str]]:
    return {"image": (name, data, content_type)}


async def test_readyz_when_model_loaded(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


async def test_face_is_detected_and_classified(client: httpx.AsyncClient, face_jpeg: bytes) -> None:
    response = await client.post("/predict", files=upload(face_jpeg))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (320, 320)
    assert body["message"] is None
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert set(face["box"]) == {"x", "y", "w", "h"}
    assert 0 < face["confidence"] <= 1
    assert body["detector"] == "yunet"
    assert list(face["landmarks"]) == ["eye_left", "eye_right", "nose", "mouth_left", "mouth_right"]
    box = face["box"]
    for x, y in face["landmarks"].values():
        assert box["x"] <= x <= box["x"] + box["w"] and box["y"] <= y <= box["y"] + box["h"]
    assert list(body["probabilities"]) == list(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["probabilities"] == face["probabilities"]
    assert body["model"]["name"] == "face-emotion-resnet"


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp")]
)
async def test_every_accepted_format_works_whatever_the_content_type(
    client: httpx.AsyncClient, fmt: str, mime: str
) -> None:
    data = encode(face_image(320, 320), fmt)
    # The declared type is ignored: the content decides.
    response = await client.post("/predict", files=upload(data, "upload.bin", "application/octet-stream"))
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1, mime


async def test_no_face_gives_empty_faces_and_message(client: httpx.AsyncClient, landscape_png: bytes) -> None:
    response = await client.post("/predict", files=upload(landscape_png, "scene.png", "image/png"))
    assert response.status_code == 200
    body = response.json()
    assert body["faces"] == []
    assert body["label"] is None
    assert body["probabilities"] is None
    assert body["message"] == NO_FACE_MESSAGE


async def test_two_faces(client: httpx.AsyncClient, two_faces_png: bytes) -> None:
    response = await client.post("/predict", files=upload(two_faces_png, "two.png", "image/png"))
    assert response.status_code == 200
    assert len(response.json()["faces"]) == 2


async def test_small_crop_auto_vs_always(client: httpx.AsyncClient, face_bgr) -> None:
    import cv2

    # A 48x48 face crop is taken whole in auto mode (not searched: the detector did not run).
    crop = encode(cv2.resize(face_bgr[40:280, 40:280], (48, 48), interpolation=cv2.INTER_AREA), "PNG")
    auto = (await client.post("/predict", files=upload(crop, "crop.png"), params={"detect": "auto"})).json()
    assert [(f["box"], f["landmarks"]) for f in auto["faces"]] == [({"x": 0, "y": 0, "w": 48, "h": 48}, None)]
    assert auto["detector"] is None
    assert auto["label"] in LABELS
    # A small image without a face: auto takes it whole, always reports no face.
    thumb = encode(cv2.resize(landscape_image(), (48, 48), interpolation=cv2.INTER_AREA), "PNG")
    auto = (await client.post("/predict", files=upload(thumb, "thumb.png"), params={"detect": "auto"})).json()
    assert [(f["box"], f["confidence"]) for f in auto["faces"]] == [({"x": 0, "y": 0, "w": 48, "h": 48}, None)]
    always = (await client.post("/predict", files=upload(thumb, "thumb.png"), params={"detect": "always"})).json()
    assert always["faces"] == []
    assert always["message"] == NO_FACE_MESSAGE


async def test_bad_detect_value_is_422(client: httpx.AsyncClient, face_jpeg: bytes) -> None:
    response = await client.post("/predict", files=upload(face_jpeg), params={"detect": "sometimes"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("data", "status", "detail", "code"),
    [
        (b"just some text, honestly\n", 415, NOT_AN_IMAGE, "unsupported_media_type"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", 415, NOT_AN_IMAGE, "unsupported_media_type"),
        (b"\x89PNG\r\n\x1a\n" + b"\x07" * 64, 422, CORRUPT_IMAGE, "corrupt_input"),
    ],
)
async def test_non_images_are_415_and_corrupt_images_422(
    client: httpx.AsyncClient, data: bytes, status: int, detail: str, code: str
) -> None:
    # The same split as the speech service and the gateway: wrong type 415, right type but undecodable 422.
    response = await client.post("/predict", files=upload(data, "upload.png", "image/png"))
    assert response.status_code == status
    body = response.json()
    assert body["detail"] == detail
    assert body["code"] == code


async def test_missing_image_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", files={"file": ("x.jpg", b"abc", "image/jpeg")})
    assert response.status_code == 422


async def test_too_many_pixels_is_413(client: httpx.AsyncClient) -> None:
    # The test client's limit is 2,000,000 pixels; this flat PNG is small in bytes but 2.4 MP.
    import numpy as np

    data = encode(np.zeros((1200, 2000, 3), dtype=np.uint8), "PNG")
    response = await client.post("/predict", files=upload(data, "big.png", "image/png"))
    assert response.status_code == 413
    assert response.json()["code"] == "image_too_large"


async def test_batch_returns_results_in_order(
    client: httpx.AsyncClient, face_jpeg: bytes, landscape_png: bytes
) -> None:
    files = [("image", ("a.jpg", face_jpeg, "image/jpeg")), ("image", ("b.png", landscape_png, "image/png"))]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert len(first["faces"]) == 1
    assert second["faces"] == []
    assert second["message"] == NO_FACE_MESSAGE


async def test_batch_errors_name_the_image_and_limit_the_size(client: httpx.AsyncClient, face_jpeg: bytes) -> None:
    files = [("image", ("a.jpg", face_jpeg, "image/jpeg")), ("image", ("b.png", b"not an image", "image/png"))]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 415
    assert response.json()["detail"] == f"image 1: {NOT_AN_IMAGE}"
    too_many = [("image", (f"{i}.jpg", face_jpeg, "image/jpeg")) for i in range(5)]
    response = await client.post("/predict/batch", files=too_many)
    assert response.status_code == 422
    assert response.json()["code"] == "batch_too_large"
    assert response.json()["detail"] == "Batch has 5 images; the limit is 4"


async def test_model_missing_gives_503(
    client_without_model: httpx.AsyncClient, face_jpeg: bytes, tmp_path: Path
) -> None:
    ready = await client_without_model.get("/readyz")
    assert ready.status_code == 503
    assert "weights file not found" in ready.json()["detail"]
    assert str(tmp_path) not in ready.text, "/readyz must not show server file paths"
    response = await client_without_model.post("/predict", files=upload(face_jpeg))
    assert response.status_code == 503
    assert response.json()["code"] == "model_not_ready"


async def test_openapi_declares_operations(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/predict"]["post"]["operationId"] == "predict_image"
    assert spec["paths"]["/predict/batch"]["post"]["operationId"] == "predict_image_batch"
    assert {"413", "422", "503"} <= set(spec["paths"]["/predict"]["post"]["responses"])


async def test_detect_never_reports_no_detector_and_no_landmarks(client: httpx.AsyncClient, face_jpeg: bytes) -> None:
    response = await client.post("/predict", params={"detect": "never"}, files=upload(face_jpeg))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["detector"] is None
    (face,) = body["faces"]
    assert face["landmarks"] is None
    assert face["box"] == {"x": 0, "y": 0, "w": 320, "h": 320}

"""CSV export of the prediction history, safe to open in a spreadsheet."""

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from services.gateway.models import Prediction
from shared.labels import LABELS

#: A cell starting with one of these is a formula in Excel/LibreOffice/Sheets (CSV injection).
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")

HEADER: Final = (
    "id",
    "created_at",
    "kind",
    "label",
    *(f"p_{label}" for label in LABELS),
    "succeeded",
    "failed",
    "fusion_error",
    "text_length",
    "audio_duration_s",
    "image_width",
    "image_height",
    "total_latency_ms",
    "models",
    "video_duration_s",
    "video_frame_count",
    "timeline_labels",
    "transcript",
)


def neutralise(value: Any) -> Any:
    """Prefix text cells that a spreadsheet would evaluate with a quote (OWASP's advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def row_values(row: Prediction) -> list[Any]:
    """One CSV row for a prediction."""
    results: dict[str, Any] = row.modality_results or {}
    probabilities: dict[str, float] = row.probabilities or {}
    succeeded = [m for m, r in results.items() if r.get("status") == "ok"]
    failed = [f"{m}:{r.get('error', {}).get('code', 'error')}" for m, r in results.items() if r.get("status") != "ok"]
    values: list[Any] = [
        row.id,
        row.created_at.isoformat(),
        row.kind,
        row.label or "",
        *(f"{probabilities[label]:.6f}" if label in probabilities else "" for label in LABELS),
        ";".join(succeeded),
        ";".join(failed),
        (row.fusion_error or {}).get("code", ""),
        row.text_length if row.text_length is not None else "",
        row.audio_duration_s if row.audio_duration_s is not None else "",
        row.image_width if row.image_width is not None else "",
        row.image_height if row.image_height is not None else "",
        (row.latencies_ms or {}).get("total", ""),
        ";".join(f"{k}={v}" for k, v in sorted((row.model_versions or {}).items())),
        row.video_duration_s if row.video_duration_s is not None else "",
        row.video_frame_count if row.video_frame_count is not None else "",
        ";".join(w.get("label") or "-" for w in (row.timeline or {}).get("windows", [])),
        row.transcript or "",
    ]
    return [neutralise(v) for v in values]


def _line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


async def csv_lines(rows: AsyncIterator[Prediction]) -> AsyncIterator[str]:
    """The header, then one line per prediction, as they are fetched."""
    yield _line(HEADER)
    async for row in rows:
        yield _line(row_values(row))

"""History: the caller's past predictions, statistics and CSV export."""

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.gateway import repository
from services.gateway.auth import MAX_ID
from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import CurrentUser, SessionDep, SettingsDep, require_scope
from services.gateway.errors import PREDICTION_NOT_FOUND, NotFound
from services.gateway.export import csv_lines
from services.gateway.models import utcnow
from services.gateway.predictions import to_out
from services.gateway.repository import HistoryFilter
from services.gateway.schemas import PredictionOut
from shared.errors import InvalidInput, error_responses
from shared.labels import Emotion

#: Included with the auth dependency and the `history:read` scope attached (see app.py).
router = APIRouter(route_class=JsonLimitedRoute, tags=["history"], responses=error_responses(401, 403, 429))

CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, one row per prediction"},
    **error_responses(422),
}
HistoryModality = Literal["speech", "text", "image", "multimodal"]
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Filters outside this range are clamped to it: nothing is stored before or after it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")


class PredictionPage(BaseModel):
    """One page of the user's prediction history, newest first."""

    items: list[PredictionOut]
    total: int = Field(description="Matching predictions over all pages.")
    limit: int
    offset: int


class DayCount(BaseModel):
    """Predictions on one UTC day."""

    date: date
    total: int
    by_emotion: dict[str, int]


class Statistics(BaseModel):
    """Counts over the user's history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 3,
                    "by_emotion": {"happy": 2, "sad": 1},
                    "by_kind": {"text": 2, "multimodal": 1},
                    "by_modality": {"text": 3, "image": 1, "speech": 0},
                    "per_day": [{"date": "2026-11-25", "total": 3, "by_emotion": {"happy": 2, "sad": 1}}],
                }
            ]
        }
    )

    total: int
    by_emotion: dict[str, int] = Field(description="Per label; 'none' counts predictions without a label.")
    by_kind: dict[str, int] = Field(description="Per endpoint: speech, text, image, multimodal.")
    by_modality: dict[str, int] = Field(description="Predictions whose input included each modality.")
    per_day: list[DayCount]


def _iso_only(value: Any) -> Any:
    """Refuse numbers: pydantic would read ``to=0.5`` as a Unix time (1970), not as a mistake."""
    if isinstance(value, str) and not _ISO_START.match(value.strip()):
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-11-25 or 2026-11-25T12:00:00Z")
    return value


def _date_only_means_end_of_day(value: Any) -> Any:
    """``to=2026-11-25`` includes that whole day (pydantic alone would read it as its first instant)."""
    value = _iso_only(value)
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
        return datetime.combine(datetime.fromisoformat(value.strip()).date(), time.max)
    return value


def _in_stored_range(value: datetime | None) -> datetime | None:
    """UTC, clamped to what every backend stores (year 1 with an offset would overflow, MySQL stops at 9999)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 or 9999-12-31T23:59-05:00
        return EARLIEST if value.year < EARLIEST.year else LATEST
    return min(max(value, EARLIEST), LATEST)


def history_filter(
    modality: Annotated[
        HistoryModality | None, Query(description="Input included this modality (or 'multimodal' requests).")
    ] = None,
    emotion: Annotated[Emotion | None, Query(description="Predicted (fused) label.")] = None,
    date_from: Annotated[
        datetime | None,
        BeforeValidator(_iso_only),
        Query(alias="from", description="ISO 8601, inclusive; a date alone starts at 00:00 UTC."),
    ] = None,
    date_to: Annotated[
        datetime | None,
        BeforeValidator(_date_only_means_end_of_day),
        Query(alias="to", description="ISO 8601, inclusive; a date alone includes that whole day (UTC)."),
    ] = None,
) -> HistoryFilter:
    """Query parameters shared by the history, statistics and export."""
    date_from, date_to = _in_stored_range(date_from), _in_stored_range(date_to)
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("'from' must not be after 'to'")
    return HistoryFilter(
        modality=modality, emotion=str(emotion) if emotion else None, date_from=date_from, date_to=date_to
    )


FilterDep = Annotated[HistoryFilter, Depends(history_filter)]
#: ``{prediction_id:int}`` in the paths: "export.csv" never reaches them (so DELETE on it is 405).
PredictionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The prediction's id.")]


@router.get(
    "/predictions",
    operation_id="list_predictions",
    summary="Your predictions, newest first",
    responses=error_responses(422),
)
async def list_predictions(
    user: CurrentUser,
    session: SessionDep,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> PredictionPage:
    """Paginated with limit/offset; ``total`` counts every match."""
    rows, total = await repository.list_predictions(
        session=session, user_id=user.id, filters=filters, limit=limit, offset=offset
    )
    return PredictionPage(items=[to_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/predictions/export.csv",
    operation_id="export_predictions_csv",
    summary="Download your history as CSV",
    response_class=StreamingResponse,
    responses=CSV_RESPONSES,
)
async def export_csv(
    request: Request, user: CurrentUser, settings: SettingsDep, filters: FilterDep
) -> StreamingResponse:
    """Streams rows as they are read; text cells that look like formulas are quoted."""
    sessionmaker = request.app.state.sessionmaker
    user_id = user.id

    async def body() -> AsyncIterator[str]:
        # Its own session: the request's may be closed before the stream ends.
        async with sessionmaker() as session:
            rows = repository.stream_predictions(
                session=session, user_id=user_id, filters=filters, max_rows=settings.export_max_rows
            )
            async for line in csv_lines(rows):
                yield line

    stamp = utcnow().strftime("%Y%m%d")
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="predictions-{stamp}.csv"'},
    )


@router.get(
    "/predictions/{prediction_id:int}",
    operation_id="get_prediction",
    summary="One of your predictions",
    responses=error_responses(404),
)
async def get_prediction(prediction_id: PredictionId, user: CurrentUser, session: SessionDep) -> PredictionOut:
    """Someone else's prediction answers 404, exactly like a missing one."""
    row = await repository.get_prediction(session=session, user_id=user.id, prediction_id=prediction_id)
    if row is None:
        raise NotFound(PREDICTION_NOT_FOUND)
    return to_out(row)


@router.delete(
    "/predictions/{prediction_id:int}",
    operation_id="delete_prediction",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your predictions",
    responses=error_responses(404),
    dependencies=[Depends(require_scope("history:write"))],
)
async def delete_prediction(prediction_id: PredictionId, user: CurrentUser, session: SessionDep) -> Response:
    """Someone else's prediction answers 404, exactly like a missing one. API keys need `history:write`."""
    if not await repository.delete_prediction(session=session, user_id=user.id, prediction_id=prediction_id):
        raise NotFound(PREDICTION_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/statistics",
    operation_id="get_statistics",
    summary="Counts per emotion, per modality and per day",
    responses=error_responses(422),
)
async def get_statistics(user: CurrentUser, session: SessionDep, filters: FilterDep) -> Statistics:
    """Over your whole history, or the filtered part of it."""
    return Statistics.model_validate(await repository.statistics(session=session, user_id=user.id, filters=filters))

"""Database operations (keyword-only, one session passed in, the caller commits)."""

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from services.gateway.errors import DUPLICATE_USER, Conflict
from services.gateway.models import ApiKey, Prediction, RevokedToken, User, utcnow
from shared.labels import LABELS, MODALITIES

#: Don't write last_used_at on every request made with an API key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


async def create_user(*, session: AsyncSession, username: str, email: str, password_hash: str) -> User:
    """Insert a user; 409 if the username or email is taken."""
    user = User(username=username.lower(), email=email.lower(), password_hash=password_hash)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(DUPLICATE_USER) from exc
    return user


async def user_exists(*, session: AsyncSession, username: str, email: str) -> bool:
    """Whether the username or email is taken (both are stored lower-case)."""
    query = select(User.id).where(or_(User.username == username.lower(), User.email == email.lower()))
    return (await session.scalar(query.limit(1))) is not None


async def find_user_for_login(*, session: AsyncSession, login: str) -> User | None:
    """The user whose username or email is ``login``."""
    column = User.email if "@" in login else User.username
    return await session.scalar(select(User).where(column == login.strip().lower()))


async def revoke_token(*, session: AsyncSession, jti: str, user_id: int, expires_at: datetime) -> None:
    """Record a token as revoked, and purge revocations of tokens that have expired anyway."""
    now = utcnow()
    await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    if await session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at, revoked_at=now))
    await session.commit()


async def is_token_revoked(*, session: AsyncSession, jti: str) -> bool:
    """Whether logout revoked this token id."""
    return (await session.get(RevokedToken, jti)) is not None


#: Built once (every authenticated request runs it): the user and whether the token id was revoked.
_USER_FOR_TOKEN = (
    select(User, RevokedToken.jti)
    .outerjoin(RevokedToken, RevokedToken.jti == bindparam("jti"))
    .where(User.id == bindparam("user_id"))
    .limit(1)
)


async def user_for_token(*, session: AsyncSession, user_id: int, jti: str) -> tuple[User | None, bool]:
    """The token's user and whether its ``jti`` was revoked, in one query."""
    row = (await session.execute(_USER_FOR_TOKEN, {"user_id": user_id, "jti": jti})).first()
    if row is None:
        return None, False
    return row[0], row[1] is not None


async def log_out_everywhere(*, session: AsyncSession, user: User) -> None:
    """Invalidate every token issued to ``user`` so far (their ``ver`` no longer matches)."""
    await session.execute(update(User).where(User.id == user.id).values(token_version=User.token_version + 1))
    await session.commit()


async def create_api_key(
    *, session: AsyncSession, user_id: int, name: str, prefix: str, key_hash: str, scopes: list[str]
) -> ApiKey:
    """Store a new API key (hash only)."""
    key = ApiKey(
        user_id=user_id, name=name, prefix=prefix, key_hash=key_hash, scopes=" ".join(scopes), created_at=utcnow()
    )
    session.add(key)
    await session.commit()
    return key


async def list_api_keys(*, session: AsyncSession, user_id: int) -> list[ApiKey]:
    """A user's API keys, newest first (revoked ones included, marked)."""
    query = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())
    return list((await session.scalars(query)).all())


async def revoke_api_key(*, session: AsyncSession, user_id: int, key_id: int) -> bool:
    """Mark the user's key revoked; False if the user has no such key."""
    key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
    return True


async def find_api_key(*, session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The key with this hash, with its user loaded."""
    return await session.scalar(select(ApiKey).options(joinedload(ApiKey.user)).where(ApiKey.key_hash == key_hash))


async def touch_api_key(*, session: AsyncSession, key: ApiKey) -> None:
    """Update last_used_at, at most once per interval."""
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > API_KEY_TOUCH_INTERVAL:
        key.last_used_at = now
        await session.commit()


async def get_prediction(*, session: AsyncSession, user_id: int, prediction_id: int) -> Prediction | None:
    """The user's prediction; None if missing or someone else's (callers answer 404 either way)."""
    query = select(Prediction).where(Prediction.id == prediction_id, Prediction.user_id == user_id)
    return await session.scalar(query)


async def delete_prediction(*, session: AsyncSession, user_id: int, prediction_id: int) -> bool:
    """Delete the user's prediction; False if there is no such prediction of theirs."""
    prediction = await get_prediction(session=session, user_id=user_id, prediction_id=prediction_id)
    if prediction is None:
        return False
    await session.delete(prediction)
    await session.commit()
    return True


@dataclass(frozen=True)
class HistoryFilter:
    """Filters on the prediction history."""

    modality: str | None = None
    emotion: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    def conditions(self, user_id: int) -> list[ColumnElement[bool]]:
        """WHERE clauses for this filter."""
        clauses: list[ColumnElement[bool]] = [Prediction.user_id == user_id]
        if self.modality == "multimodal":
            clauses.append(Prediction.kind == "multimodal")
        elif self.modality is not None:
            clauses.append(getattr(Prediction, f"has_{self.modality}").is_(True))
        if self.emotion is not None:
            clauses.append(Prediction.label == self.emotion)
        if self.date_from is not None:
            clauses.append(Prediction.created_at >= self.date_from)
        if self.date_to is not None:
            clauses.append(Prediction.created_at <= self.date_to)
        return clauses


def _history_query(user_id: int, filters: HistoryFilter) -> Select[Prediction]:
    return (
        select(Prediction)
        .where(*filters.conditions(user_id))
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
    )


async def list_predictions(
    *, session: AsyncSession, user_id: int, filters: HistoryFilter, limit: int, offset: int
) -> tuple[list[Prediction], int]:
    """One page of the user's history (newest first) and the total matching count."""
    total = await session.scalar(select(func.count(Prediction.id)).where(*filters.conditions(user_id)))
    rows = await session.scalars(_history_query(user_id, filters).limit(limit).offset(offset))
    return list(rows.all()), int(total or 0)


async def stream_predictions(
    *, session: AsyncSession, user_id: int, filters: HistoryFilter, max_rows: int, batch: int = 500
) -> AsyncIterator[Prediction]:
    """The user's history, newest first, fetched in batches (for the CSV export)."""
    offset = 0
    while offset < max_rows:
        query = _history_query(user_id, filters).limit(min(batch, max_rows - offset)).offset(offset)
        rows = list((await session.scalars(query)).all())
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        offset += len(rows)


async def statistics(*, session: AsyncSession, user_id: int, filters: HistoryFilter) -> dict[str, Any]:
    """Counts per emotion, per endpoint, per input modality and per UTC day."""
    where = filters.conditions(user_id)
    by_emotion = dict.fromkeys(LABELS, 0)
    for label, count in await session.execute(
        select(Prediction.label, func.count(Prediction.id)).where(*where).group_by(Prediction.label)
    ):
        by_emotion[label or "none"] = by_emotion.get(label or "none", 0) + int(count)
    by_kind = dict.fromkeys((*MODALITIES, "multimodal"), 0)
    for kind, count in await session.execute(
        select(Prediction.kind, func.count(Prediction.id)).where(*where).group_by(Prediction.kind)
    ):
        by_kind[kind] = int(count)
    sums = await session.execute(
        select(
            func.count(Prediction.id),
            *(func.coalesce(func.sum(cast(getattr(Prediction, f"has_{m}"), Integer)), 0) for m in MODALITIES),
        ).where(*where)
    )
    total, *per_modality = sums.one()
    by_modality = {m: int(n) for m, n in zip(MODALITIES, per_modality, strict=True)}
    # Stored instants are UTC, so DATE() gives the UTC day (a str on SQLite, a date on MySQL).
    day = func.date(Prediction.created_at)
    per_day: dict[date, dict[str, int]] = defaultdict(dict)
    for value, label, count in await session.execute(
        select(day, Prediction.label, func.count(Prediction.id)).where(*where).group_by(day, Prediction.label)
    ):
        per_day[date.fromisoformat(str(value)[:10])][label or "none"] = int(count)
    days = [
        {"date": day, "total": sum(counts.values()), "by_emotion": dict(counts)}
        for day, counts in sorted(per_day.items())
    ]
    return {
        "total": int(total or 0),
        "by_emotion": by_emotion,
        "by_kind": by_kind,
        "by_modality": by_modality,
        "per_day": days,
    }

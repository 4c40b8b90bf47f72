"""The prediction writer: concurrent rows share one commit, each caller gets its own row or error."""

import asyncio

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from services.gateway.db import create_engine, make_sessionmaker
from services.gateway.models import Prediction, User
from services.gateway.writer import PredictionWriter


@pytest.fixture
async def sessionmaker(clean_db):
    engine = create_engine(clean_db)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def make_user(sessionmaker) -> int:
    async with sessionmaker() as session:
        user = User(username="writer", email="writer@example.com", password_hash="x")
        session.add(user)
        await session.commit()
        return user.id


async def count_rows(sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Prediction)) or 0)


def row(user_id: int, label: str = "happy") -> Prediction:
    return Prediction(user_id=user_id, kind="text", has_text=True, label=label, latencies_ms={"total": 1.0})


async def test_concurrent_rows_share_one_commit_and_each_caller_gets_its_row(sessionmaker):
    user_id = await make_user(sessionmaker)
    writer = PredictionWriter(sessionmaker)
    commits: list[object] = []
    event.listen(sessionmaker.kw["bind"].sync_engine, "commit", commits.append)
    writer.start()
    try:
        first = asyncio.create_task(writer.save(row(user_id)))
        await asyncio.sleep(0)  # the writer takes the first row alone ...
        rest = [asyncio.create_task(writer.save(row(user_id, label))) for label in ("sad", "fear", "angry")]
        saved = await asyncio.gather(first, *rest)  # ... and the three that came meanwhile together
    finally:
        await writer.close()
    assert [r.label for r in saved] == ["happy", "sad", "fear", "angry"]
    assert len({r.id for r in saved}) == 4 and all(r.id for r in saved)
    assert all(r.created_at is not None for r in saved)
    assert len(commits) == 2
    assert await count_rows(sessionmaker) == 4


async def test_a_bad_row_fails_only_its_own_caller(sessionmaker):
    user_id = await make_user(sessionmaker)
    writer = PredictionWriter(sessionmaker)
    writer.start()
    try:
        blocker = asyncio.create_task(writer.save(row(user_id)))
        await asyncio.sleep(0)
        good = asyncio.create_task(writer.save(row(user_id, "sad")))
        bad = asyncio.create_task(writer.save(row(user_id + 1000, "fear")))  # no such user: foreign key
        other = asyncio.create_task(writer.save(row(user_id, "angry")))
        await asyncio.wait([blocker, good, bad, other])
    finally:
        await writer.close()
    assert good.result().id and other.result().id and blocker.result().id
    with pytest.raises(IntegrityError):
        bad.result()
    assert await count_rows(sessionmaker) == 3


async def test_a_caller_that_goes_away_keeps_its_row_and_close_writes_what_is_pending(sessionmaker):
    user_id = await make_user(sessionmaker)
    writer = PredictionWriter(sessionmaker)
    writer.start()
    gone = asyncio.create_task(writer.save(row(user_id)))
    await asyncio.sleep(0)
    gone.cancel()
    waiting = asyncio.create_task(writer.save(row(user_id, "sad")))
    await asyncio.sleep(0)
    await writer.close()
    assert (await waiting).id
    assert await count_rows(sessionmaker) == 2
    with pytest.raises(RuntimeError):
        await writer.save(row(user_id))


async def test_callers_are_not_left_waiting_when_the_writer_is_cancelled(sessionmaker):
    user_id = await make_user(sessionmaker)
    writer = PredictionWriter(sessionmaker)
    writer.start()
    await asyncio.sleep(0)  # the writer waits for work
    waiting = asyncio.create_task(writer.save(row(user_id)))
    await asyncio.sleep(0)  # queued, the writer woken but not yet running
    writer._task.cancel()
    with pytest.raises(RuntimeError, match="writer stopped"):
        await waiting
    with pytest.raises(RuntimeError):
        await writer.save(row(user_id))

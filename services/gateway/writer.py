"""Prediction rows written in shared transactions: the requests that finish together commit once.

Every prediction request ends with one INSERT and one COMMIT. Under concurrency those commits
queue on the database (SQLite has one writer at a time and its busy handler sleeps between
retries; MySQL/MariaDB flush the log per commit). One writer task takes every row waiting when
it is free and inserts them in one transaction, so N concurrent requests cost one commit, and
a lone request is written at once (nothing waits to fill a batch). Each caller still gets its
own row back with its id, or its own error: if a shared transaction fails, its rows are retried
one per transaction so that one bad row fails only its request. A caller that goes away keeps
its row: the prediction was made and belongs in the history.
"""

import asyncio
import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway.models import Prediction

logger = logging.getLogger(__name__)

#: Most rows in one transaction.
MAX_ROWS_PER_COMMIT: Final = 64


class PredictionWriter:
    """Inserts :class:`Prediction` rows for concurrent requests, many per transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, max_rows: int = MAX_ROWS_PER_COMMIT) -> None:
        self._sessionmaker = sessionmaker
        self._max_rows = max_rows
        self._pending: list[tuple[Prediction, asyncio.Future[Prediction]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer task (in the app's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-writer")

    async def save(self, row: Prediction) -> Prediction:
        """Insert ``row`` (committed when this returns; its ``id`` is set)."""
        if self._closed or self._task is None or self._task.done():
            raise RuntimeError("prediction writer is not running")
        done: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        self._wakeup.set()
        # shield: a request cancelled here (client gone) does not take its row out of the batch.
        return await asyncio.shield(done)

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    batch, self._pending = self._pending[: self._max_rows], self._pending[self._max_rows :]
                    await self._write(batch)
                if self._closed:
                    return
        finally:  # cancelled (the loop is going away): nobody may wait forever for a row
            self._closed = True
            for _, done in self._pending:
                if not done.done():
                    done.set_exception(RuntimeError("prediction writer stopped"))
            self._pending.clear()

    async def _write(self, batch: list[tuple[Prediction, asyncio.Future[Prediction]]]) -> None:
        try:
            async with self._sessionmaker() as session:
                session.add_all([row for row, _ in batch])
                await session.commit()
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # The rollback made the rows transient again (no id): each can be inserted on its own.
            logger.warning("shared prediction insert failed; writing its rows one by one", exc_info=True)
            for one in batch:
                await self._write([one])
            return
        for row, done in batch:
            done.set_result(row)

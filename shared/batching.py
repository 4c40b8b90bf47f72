"""Dynamic micro-batching: concurrent requests share one model call.

Callers ``await batcher.submit(item)`` (or ``submit_many`` for a ``/predict/batch`` body). A worker
task takes up to ``max_batch_size`` queued items, waiting at most ``max_wait_ms`` after the oldest
one arrived for more to come, runs **one** call of the batch function in a worker thread (never on
the event loop) and hands each caller its own result.

* It waits only when requests overlap (``adaptive_wait``, the default): when most recent requests
  (a smoothed share over about the last ten) arrived while another was still queued or running.
  A lone client, or a trickle of requests that never meet, pays no batching delay; under
  concurrent load batches fill as before. (A rule on the gaps between arrivals is not enough: a
  lone client's requests come about one service time apart, so a faster model makes its gaps
  shorter than the wait and it would start waiting for nobody.)
* The batch function returns one entry per item, in order; an entry that is an ``Exception`` fails
  only that item's caller (one bad input never fails the others).
* If the batch function raises, only that batch's callers fail: with the exception itself when it
  is a :class:`~shared.errors.ServiceError` (so it keeps its status), else with
  :class:`InferenceFailed` (500, logged once with the traceback).
* A caller that goes away (its task is cancelled) is dropped: skipped if still queued, its result
  discarded if its batch is already running; the other items are unaffected.
* The queue is bounded (``max_queue`` items): a full queue answers :class:`Overloaded` (503 with
  ``Retry-After``) at once instead of letting latency grow without limit.
* Prometheus (on the app's registry): queue length, items per model call, time queued, model call
  duration (the last two through :meth:`shared.observability.Metrics.observe_batch`).

Nothing here knows a particular model: services build a batcher in their lifespan around their
model's ``predict``. See https://github.com/kserve/kserve (model server batching) for the idea.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Gauge, Histogram
from pydantic import Field

from shared.deps import loaded_model
from shared.errors import ServiceError
from shared.observability import Metrics
from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")
M = TypeVar("M")

#: Weight of the newest arrival in the smoothed share of overlapping arrivals (about the last ten count).
OVERLAP_SMOOTHING = 0.2
#: Batches wait for company only when at least this share of recent arrivals overlapped another request.
OVERLAP_TO_WAIT = 0.5

OVERLOADED = "Server busy: {queued} requests are already queued for the model; retry shortly"
INFERENCE_FAILED = "Inference failed for this batch"
QUEUE_TIMEOUT = "Timed out after {seconds:.1f} s waiting for the model"
SHUTTING_DOWN = "Service is shutting down"


class Overloaded(ServiceError):
    """The batcher's queue is full: try again after ``Retry-After`` seconds."""

    status_code = 503
    code = "overloaded"


class InferenceFailed(ServiceError):
    """The model raised on the batch this request was part of."""

    status_code = 500
    code = "inference_failed"


class InferenceTimeout(ServiceError):
    """The request waited longer than its timeout for a model call."""

    status_code = 503
    code = "inference_timeout"


class ShuttingDown(ServiceError):
    """The batcher was stopped while the request was queued."""

    status_code = 503
    code = "shutting_down"


class _Collectors:
    """The batcher's own Prometheus collectors on one registry (made once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_length = Gauge(
            "inference_queue_length", "Items waiting for a model call", ["service"], registry=registry
        )
        self.queue_wait = Histogram(
            "inference_queue_wait_seconds",
            "Time an item waited in the queue before its model call started",
            ["service"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.capacity = Gauge(
            "inference_queue_capacity", "Most items the queue holds (MAX_QUEUE)", ["service"], registry=registry
        )


_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = weakref.WeakKeyDictionary()


def _collectors(registry: CollectorRegistry) -> _Collectors:
    found = _COLLECTORS.get(registry)
    if found is None:
        found = _COLLECTORS[registry] = _Collectors(registry)
    return found


@dataclass(eq=False)
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatcherConfig:
    """The knobs, usually read from a service's settings."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    #: Model calls that may run at once (1 suits a CPU model using every core itself).
    concurrency: int = 1
    #: Seconds a full queue tells clients to wait (``Retry-After``).
    retry_after_s: int = 1
    #: Wait only while requests overlap (see the module docstring); False: always wait it out.
    adaptive_wait: bool = True

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue < 1 or self.concurrency < 1 or self.max_wait_ms < 0:
            raise ValueError(f"invalid batcher settings: {self}")


class MicroBatcher(Generic[In, Out]):
    """Queue items, run ``fn`` on batches of them in a thread, resolve each caller's future."""

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out | Exception]],
        config: BatcherConfig = BatcherConfig(),
        *,
        name: str = "model",
        metrics: Metrics | None = None,
    ) -> None:
        self.fn = fn
        self.config = config
        self.name = name
        self.metrics = metrics
        self._collectors = _collectors(metrics.registry) if metrics is not None else None
        if self._collectors is not None:
            self._collectors.capacity.labels(self._service).set(config.max_queue)
        self._queue: deque[_Pending[In, Out]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: Smoothed share of arrivals that found another request queued or running.
        self._overlap = 0.0

    @property
    def _service(self) -> str:
        return self.metrics.service if self.metrics is not None else self.name

    @property
    def queued(self) -> int:
        """Items waiting for a model call (cancelled ones may still be counted until skipped)."""
        return len(self._queue)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker on the running event loop (idempotent; ``submit`` calls it too)."""
        if self._closed:
            raise ShuttingDown(SHUTTING_DOWN)
        if self._worker is not None and not self._worker.done():
            return
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.config.concurrency)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.config.concurrency, thread_name_prefix=f"batcher-{self.name}"
            )
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Stop taking work, fail what is still queued (503), let running model calls finish."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(ShuttingDown(SHUTTING_DOWN))
        self._set_gauge()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ callers

    async def submit(self, item: In, *, timeout: float | None = None) -> Out:
        """The result for one item (raises that item's error, :class:`Overloaded`, ...)."""
        (result,) = await self.submit_many([item], timeout=timeout)
        return result

    async def submit_many(self, items: Sequence[In], *, timeout: float | None = None) -> list[Out]:
        """Results for several items, in order; queued together (all or none), so they usually share a call.

        If any item fails, its error is raised (after all items are done, so none is left running).
        """
        if not items:
            return []
        self.start()
        if len(self._queue) + len(items) > self.config.max_queue:
            raise Overloaded(
                OVERLOADED.format(queued=len(self._queue)), headers={"Retry-After": str(self.config.retry_after_s)}
            )
        loop = asyncio.get_running_loop()
        pendings = [_Pending[In, Out](item, loop.create_future()) for item in items]
        overlapped = bool(self._queue) or bool(self._running)  # a submit_many is one arrival
        self._overlap += OVERLAP_SMOOTHING * (float(overlapped) - self._overlap)
        self._queue.extend(pendings)
        self._set_gauge()
        assert self._wakeup is not None
        self._wakeup.set()
        futures = [p.future for p in pendings]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait(futures)
        except TimeoutError:
            raise InferenceTimeout(QUEUE_TIMEOUT.format(seconds=timeout or 0.0)) from None
        finally:
            # Cancelled by the client, timed out, or done: undone futures are dropped by the worker.
            for fut in futures:
                if not fut.done():
                    fut.cancel()
        return [fut.result() for fut in futures]

    # ------------------------------------------------------------------ worker

    def _set_gauge(self) -> None:
        if self._collectors is not None:
            self._collectors.queue_length.labels(self._service).set(len(self._queue))

    def _drop_cancelled_head(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    async def _run(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        while True:
            self._drop_cancelled_head()
            if not self._queue:
                self._set_gauge()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait for a full batch, but never longer than max_wait after the oldest item arrived,
            # and not at all while requests do not overlap (nobody is likely to join).
            deadline = self._queue[0].enqueued + self.config.max_wait_ms / 1000
            lone = self.config.adaptive_wait and self._overlap < OVERLAP_TO_WAIT
            while not lone and len(self._queue) < self.config.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
            await self._slots.acquire()
            batch: list[_Pending[In, Out]] = []
            while self._queue and len(batch) < self.config.max_batch_size:
                pending = self._queue.popleft()
                if not pending.future.done():
                    batch.append(pending)
            self._set_gauge()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._call(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _call(self, batch: list[_Pending[In, Out]]) -> None:
        assert self._slots is not None and self._executor is not None
        started = time.perf_counter()
        if self._collectors is not None:
            for pending in batch:
                self._collectors.queue_wait.labels(self._service).observe(started - pending.enqueued)
        items = [p.item for p in batch]
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, items)
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if isinstance(exc, ServiceError):
                error: Exception = exc
            else:
                logger.exception("inference failed on a batch of %d", len(batch), extra={"batcher": self.name})
                error = InferenceFailed(INFERENCE_FAILED)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finally:
            self._slots.release()
            if self.metrics is not None:
                self.metrics.observe_batch(len(batch), time.perf_counter() - started)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():  # the caller went away while the model ran
                continue
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)


def suggested_threads(cpu_limit: float | None = None) -> int:
    """Threads for a model runtime: the container's CPU quota (cgroup v2 ``cpu.max``), else the CPU count."""
    if cpu_limit is None:
        try:
            quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()
            cpu_limit = None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            cpu_limit = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpu_limit is not None:
        available = min(available, max(1, math.floor(cpu_limit)))
    return max(1, available)


# --------------------------------------------------------------------------- service wiring


class BatchingSettings(BaseServiceSettings):
    """Settings of a service that micro-batches (``MAX_BATCH_SIZE`` is the service's own field).

    ``MAX_BATCH_SIZE`` caps both one ``/predict/batch`` body and one model call.
    """

    max_batch_wait_ms: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Longest a request waits for others to share its model call (ms); it waits only while requests"
            " overlap (see BATCH_WAIT_ADAPTIVE)."
        ),
    )
    batch_wait_adaptive: bool = Field(
        default=True,
        description=(
            "Wait for others only when most recent requests (about the last ten) arrived while another was queued"
            " or running; a lone client is answered without the wait. false: always wait it out (fuller batches,"
            " slower answers at low load)."
        ),
    )
    max_queue: int = Field(default=256, gt=0, description="Most items queued for the model; beyond it 503.")
    max_concurrent_batches: int = Field(default=1, gt=0, description="Model calls run at once.")
    max_batch_size: int = Field(default=32, gt=0, description="Most items in one model call or /predict/batch.")

    def batcher_config(self) -> BatcherConfig:
        """These settings as a :class:`BatcherConfig`."""
        return BatcherConfig(
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_batch_wait_ms,
            max_queue=self.max_queue,
            concurrency=self.max_concurrent_batches,
            adaptive_wait=self.batch_wait_adaptive,
        )


def batching(
    make_fn: Callable[[M], Callable[[list[Any]], Sequence[Any]]],
) -> Callable[[FastAPI, M], AbstractAsyncContextManager[None]]:
    """A ``while_ready`` context for :func:`shared.service.create_inference_app`: one batcher per app.

    ``make_fn(model)`` is the batch function; the batcher is ``app.state.batcher`` while the model
    is ready, and is stopped (queued callers get 503) at shutdown.
    """

    @asynccontextmanager
    async def while_ready(app: FastAPI, model: M) -> AsyncIterator[None]:
        settings: BatchingSettings = app.state.settings
        metrics: Metrics = app.state.metrics
        batcher = MicroBatcher(make_fn(model), settings.batcher_config(), name=metrics.service, metrics=metrics)
        app.state.batcher = batcher
        try:
            yield
        finally:
            app.state.batcher = None
            await batcher.stop()

    return while_ready


async def get_batcher(request: Request) -> MicroBatcher[Any, Any]:
    """The app's batcher (a route dependency), or 503 (the model's not-ready answer) until it is ready."""
    loaded_model(request)
    batcher: MicroBatcher[Any, Any] = request.app.state.batcher
    return batcher

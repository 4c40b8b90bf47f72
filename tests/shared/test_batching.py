"""The micro-batcher's contract, with fast fake models (no ML stack needed)."""

import asyncio
import threading
import time

import pytest
from prometheus_client import generate_latest

from shared.batching import (
    BatcherConfig,
    InferenceFailed,
    InferenceTimeout,
    MicroBatcher,
    Overloaded,
    ShuttingDown,
    suggested_threads,
)
from shared.errors import InvalidInput, ServiceError
from shared.observability import Metrics


class FakeModel:
    """Doubles its inputs; records every call's batch and the thread it ran on."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.threads: list[str] = []
        self.delay = delay
        self.gate = gate

    def __call__(self, batch: list[int]) -> list[int | Exception]:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(list(batch))
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return [InvalidInput(f"bad item {x}") if x < 0 else 2 * x for x in batch]


async def test_concurrent_requests_share_one_call_and_each_gets_its_own_result() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=8, max_wait_ms=50))
    results = await asyncio.gather(*(batcher.submit(i) for i in range(8)))
    await batcher.stop()
    assert results == [2 * i for i in range(8)]
    assert model.calls == [list(range(8))]  # one call, in arrival order
    assert model.threads[0] != threading.current_thread().name  # off the event loop


async def test_batches_never_exceed_the_maximum_and_keep_arrival_order() -> None:
    model = FakeModel(delay=0.01)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=4, max_wait_ms=20))
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    await batcher.stop()
    assert results == [2 * i for i in range(10)]
    assert all(len(call) <= 4 for call in model.calls)
    assert [x for call in model.calls for x in call] == list(range(10))


async def test_requests_that_never_overlap_run_at_once() -> None:
    # max_wait is a minute: waiting it out would trip the 5 s bound below.
    model = FakeModel()
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=32, max_wait_ms=60_000))
    for x in range(12):  # one client, one request at a time
        assert await asyncio.wait_for(batcher.submit(x), timeout=5) == 2 * x
    await batcher.stop()
    assert model.calls == [[x] for x in range(12)]


async def test_under_overlapping_load_a_lone_request_waits_at_most_max_wait() -> None:
    model = FakeModel(delay=0.005)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=32, max_wait_ms=30))
    stream = []
    for i in range(30):  # a request every millisecond, each model call 5 ms: requests overlap
        stream.append(asyncio.create_task(batcher.submit(i)))
        await asyncio.sleep(0.001)
    assert await asyncio.gather(*stream) == [2 * i for i in range(30)]
    assert len(model.calls) < 30  # the stream was batched
    start = time.perf_counter()
    assert await batcher.submit(21) == 42
    elapsed = time.perf_counter() - start
    await batcher.stop()
    assert 0.02 <= elapsed < 0.5
    assert model.calls[-1] == [21]


async def test_without_adaptive_wait_a_lone_request_always_waits_max_wait() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=32, max_wait_ms=30, adaptive_wait=False))
    start = time.perf_counter()
    assert await batcher.submit(21) == 42
    elapsed = time.perf_counter() - start
    await batcher.stop()
    assert 0.025 <= elapsed < 0.5
    assert model.calls == [[21]]


async def test_a_bad_item_fails_only_its_own_caller() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=8, max_wait_ms=50))
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, -1, 3)), return_exceptions=True)
    await batcher.stop()
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], InvalidInput) and results[1].status_code == 422
    assert model.calls == [[1, -1, 3]]


async def test_a_model_exception_fails_only_that_batch() -> None:
    calls: list[list[int]] = []

    def flaky(batch: list[int]) -> list[int]:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("CUDA-less kernel exploded")
        return [x + 100 for x in batch]

    batcher = MicroBatcher(flaky, BatcherConfig(max_batch_size=2, max_wait_ms=20))
    first = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    second = await asyncio.gather(batcher.submit(3), batcher.submit(4))
    await batcher.stop()
    assert all(isinstance(r, InferenceFailed) and r.status_code == 500 for r in first)
    assert "exploded" not in str(first[0])  # internals are logged, not returned
    assert second == [103, 104]


async def test_a_service_error_from_the_model_keeps_its_status() -> None:
    class Busy(ServiceError):
        status_code = 503
        code = "busy"

    def busy(batch: list[int]) -> list[int]:
        raise Busy("model warming up")

    batcher = MicroBatcher(busy, BatcherConfig(max_wait_ms=1))
    with pytest.raises(Busy):
        await batcher.submit(1)
    await batcher.stop()


async def test_a_wrong_number_of_results_fails_the_batch_not_the_worker() -> None:
    batcher = MicroBatcher(lambda batch: batch[:1], BatcherConfig(max_batch_size=4, max_wait_ms=20))
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, InferenceFailed) for r in results)
    batcher.fn = lambda batch: [x * 3 for x in batch]
    assert await batcher.submit(5) == 15
    await batcher.stop()


async def test_a_cancelled_queued_request_is_dropped_before_the_model_call() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=1, max_wait_ms=0))
    blocker = asyncio.create_task(batcher.submit(1))  # occupies the model until the gate opens
    await asyncio.sleep(0.05)
    doomed = asyncio.create_task(batcher.submit(2))
    survivor = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0.01)
    doomed.cancel()
    gate.set()
    assert await blocker == 2
    assert await survivor == 6
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await batcher.stop()
    assert [2] not in model.calls
    assert model.calls == [[1], [3]]


async def test_a_request_cancelled_while_its_batch_runs_does_not_harm_the_others() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=4, max_wait_ms=20))
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.1)  # the batch [0, 1, 2] is now inside the model
    tasks[1].cancel()
    gate.set()
    assert await tasks[0] == 0 and await tasks[2] == 4
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert await batcher.submit(7) == 14  # the worker is still healthy
    await batcher.stop()


async def test_a_full_queue_answers_503_with_retry_after_at_once() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=1, max_wait_ms=0, max_queue=2, retry_after_s=3))
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.05)  # taken off the queue, blocked in the model
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    assert batcher.queued == 2
    with pytest.raises(Overloaded) as info:
        await batcher.submit(3)
    assert info.value.status_code == 503 and info.value.headers == {"Retry-After": "3"}
    with pytest.raises(Overloaded):  # a batch that does not fit is refused whole
        await batcher.submit_many([4, 5])
    gate.set()
    assert [await running, *[await t for t in queued]] == [0, 2, 4]
    await batcher.stop()


async def test_submit_many_returns_results_in_order_and_raises_an_items_error() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=3, max_wait_ms=5))
    assert await batcher.submit_many([5, 6, 7, 8]) == [10, 12, 14, 16]
    with pytest.raises(InvalidInput, match="bad item -2"):
        await batcher.submit_many([1, -2])
    assert await batcher.submit_many([]) == []
    await batcher.stop()
    assert model.calls[:2] == [[5, 6, 7], [8]]


async def test_a_request_timeout_answers_503_and_the_item_is_not_run() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=1, max_wait_ms=0))
    running = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.05)
    with pytest.raises(InferenceTimeout) as info:
        await batcher.submit(2, timeout=0.05)
    assert info.value.status_code == 503
    gate.set()
    assert await running == 2
    assert await batcher.submit(3) == 6
    await batcher.stop()
    assert model.calls == [[1], [3]]


async def test_stop_fails_queued_requests_with_503_and_refuses_new_ones() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, BatcherConfig(max_batch_size=1, max_wait_ms=0))
    running = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    gate.set()
    await stopping
    assert await running == 2  # a running model call finishes
    with pytest.raises(ShuttingDown):
        await queued
    with pytest.raises(ShuttingDown):
        await batcher.submit(3)


async def test_two_model_calls_may_overlap_when_concurrency_allows() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(batch: list[int]) -> list[int]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return batch

    batcher = MicroBatcher(slow, BatcherConfig(max_batch_size=1, max_wait_ms=0, concurrency=2))
    assert await asyncio.gather(*(batcher.submit(i) for i in range(4))) == [0, 1, 2, 3]
    await batcher.stop()
    assert peak == 2


async def test_metrics_show_queue_length_batch_sizes_and_wait_times() -> None:
    metrics = Metrics("fake")
    batcher = MicroBatcher(FakeModel(), BatcherConfig(max_batch_size=4, max_wait_ms=20), metrics=metrics)
    await asyncio.gather(*(batcher.submit(i) for i in range(4)))
    await batcher.stop()
    text = generate_latest(metrics.registry).decode()
    assert 'inference_queue_length{service="fake"} 0.0' in text
    assert 'inference_queue_capacity{service="fake"} 256.0' in text
    assert 'inference_batch_size_sum{service="fake"} 4.0' in text
    assert 'inference_batch_size_count{service="fake"} 1.0' in text
    assert 'inference_queue_wait_seconds_count{service="fake"} 4.0' in text
    # A second batcher on the same registry reuses the collectors instead of failing to register.
    MicroBatcher(FakeModel(), metrics=metrics)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        BatcherConfig(max_batch_size=0)
    with pytest.raises(ValueError):
        BatcherConfig(max_queue=0)


def test_suggested_threads_respects_a_cpu_quota() -> None:
    assert suggested_threads(cpu_limit=1.0) == 1
    assert suggested_threads(cpu_limit=0.5) == 1
    assert 1 <= suggested_threads() <= 512

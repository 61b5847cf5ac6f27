"""One thread that hands items to the producers' `Enqueuer`, in batches when requests overlap.

Request handlers run on the event loop; the producers' path is synchronous (redis-py). Each item
is put on a queue with a future; the gateway thread takes whatever is waiting (up to `max_batch`),
runs it through `Enqueuer.enqueue_items` (parse, thread, dedupe, submit: two pipelined round
trips for the lot) and resolves the futures. One email alone goes through at once; under load,
concurrent requests share round trips. Redis or the broker failing resolves the items not done
with the error (the caller answers 503 and the sender retries; dedupe makes the retry safe).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future

import structlog

from producers.enqueue import Enqueuer, IncompleteBatch, Outcome
from producers.sources import Item

log = structlog.get_logger("intake.gateway")

_STOP = object()


class Gateway:
    def __init__(self, enqueuer: Enqueuer, max_batch: int = 100) -> None:
        self._enqueuer = enqueuer
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="intake-gateway", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, item: Item) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((item, future))
        return future

    async def enqueue(self, item: Item) -> Outcome:
        return await asyncio.wrap_future(self.submit(item))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            work = [entry for entry in batch if entry is not _STOP]
            self._process(work)  # type: ignore[arg-type]
            if stop:
                return

    def _process(self, work: list[tuple[Item, Future[Outcome]]]) -> None:
        items = [item for item, _ in work]
        pending = {id(item): future for item, future in work}
        try:
            for item, outcome in self._enqueuer.enqueue_items(items, batch_size=len(items)):
                pending.pop(id(item)).set_result(outcome)
        except IncompleteBatch as exc:
            # What was done stands (an email in its inbox whose drain task could not be
            # published is scheduled by the sweeper); the rest gets the error.
            for item, outcome in exc.done:
                future = pending.pop(id(item), None)
                if future is not None:
                    future.set_result(outcome)
            self._fail(list(pending.values()), exc.cause)
        except Exception as exc:  # a bug must not hang the requests waiting on it
            log.error("intake.gateway_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._fail(list(pending.values()), exc)

    @staticmethod
    def _fail(futures: list[Future[Outcome]], exc: BaseException) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(exc)

"""Micro-batching: the requests that reach one model together are scored as one batch, off the event loop.

Each model has a queue and one worker thread. The collector takes the first waiting request, then whatever
else arrives within `window_ms` or is already queued, up to `max_batch` texts, and hands the texts to the
model's thread (`Classifier.score` sorts them by length and pads per batch, as `modlab predict` does). While
that batch runs, new requests queue up and form the next one, so under load batches fill without waiting
out the window. With batching off each request runs alone, in arrival order. A batch that fails is run
again one request at a time, so a request that breaks the model fails alone.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

# Texts per padded model call inside a micro-batch. A micro-batch holds whatever lengths arrived together, so
# calls of 8 (each padded to its own longest, after sorting) waste less on padding than calls of 32: on the
# MiniLM fp32 bundle, micro-batches of 64 Jigsaw texts score 114/s at 8 and 87/s at 32 (2 threads).
SERVE_BATCH_SIZE = 8


@dataclass(frozen=True)
class BatchSettings:
    enabled: bool = True
    max_batch: int = 64  # texts per model call
    window_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 4096  # texts waiting per model; more is refused (503) rather than queued without end


class Overloaded(Exception):
    """The model's queue is full: the caller should answer 503 and the client retry later."""


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """`await batcher.score(texts)` -> (probs (n, labels), seconds the model took for the batch it was in)."""

    def __init__(self, name: str, classifier, settings: BatchSettings, observe=None) -> None:
        self.name, self.classifier, self.settings = name, classifier, settings
        self._observe = observe or (lambda name, size, seconds: None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modlab-{name}")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self.waiting = 0  # texts queued, not yet handed to the model

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """After the server stopped taking requests: the queued ones finish, then the worker thread ends."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def score(self, texts: list[str]) -> tuple[np.ndarray, float]:
        if self.waiting and self.waiting + len(texts) > self.settings.max_queue:
            raise Overloaded(f"model {self.name!r} has {self.waiting:,} texts queued (--max-queue "
                             f"{self.settings.max_queue:,}); retry shortly")
        pending = _Pending(texts, asyncio.get_running_loop().create_future())
        self.waiting += len(texts)
        await self._queue.put(pending)
        return await pending.future

    async def _next_batch(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        if not self.settings.enabled:
            return batch
        size = len(batch[0].texts)
        deadline = batch[0].queued + self.settings.window_ms / 1000
        while size < self.settings.max_batch:
            if self._queue.empty():
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:  # TimeoutError from Python 3.11 on
                    break
            else:
                item = self._queue.get_nowait()
            batch.append(item)
            size += len(item.texts)
        return batch

    async def _collect(self) -> None:
        while True:
            batch = await self._next_batch()
            self.waiting -= sum(len(item.texts) for item in batch)
            try:
                await self._run(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        texts = [t for item in batch for t in item.texts]
        started = time.perf_counter()
        try:
            probs = await loop.run_in_executor(self._executor, self.classifier.predict_proba, texts)
        except Exception as err:  # noqa: BLE001 - the request that broke the batch fails, not its neighbours
            if len(batch) > 1:
                for item in batch:
                    await self._run([item])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        self._observe(self.name, len(texts), seconds)
        start = 0
        for item in batch:
            if not item.future.done():  # a client that went away cancelled its future
                item.future.set_result((probs[start : start + len(item.texts)], seconds))
            start += len(item.texts)

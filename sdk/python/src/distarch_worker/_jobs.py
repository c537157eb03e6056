"""Job pools, the worker side (docs/protocol.md §12): the inbox the stdin thread
fills with ``job`` frames, the credit asked for with ``want``, :class:`Job`,
:meth:`Worker.jobs` (an iterator) and :meth:`Worker.serve` (a handler on threads).

Credit: the worker asks for ``credit`` jobs at first, then, whenever the jobs it
holds plus those asked for and not received fall to half of it, asks for the
difference, in the same write as the answer that freed the room.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any, Callable, Deque, Iterator, Optional, Tuple

from ._frames import encode_frame

if TYPE_CHECKING:
    from ._worker import Worker

#: Jobs a worker holds at most by default (asked for plus at hand).
DEFAULT_JOB_CREDIT = 16
#: Seconds between pings while waiting for a job (an idle worker is not hung).
_IDLE_PING = 0.5


class JobError(Exception):
    """A job failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Inbox:
    """Jobs received, and the credit given."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: Deque[Tuple[int, Any]] = collections.deque()
        self._credit = 0
        self._held = 0
        self._limit = 0
        self._closed = False

    def push(self, job_id: int, payload: Any) -> None:
        with self._cond:
            self._credit = max(0, self._credit - 1)
            self._held += 1
            self._queue.append((job_id, payload))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def open(self, limit: int) -> int:
        """Raises the limit; returns the credit to ask for now."""
        with self._cond:
            self._limit = max(self._limit, max(1, limit))
            return self._top_up(True)

    def next(self, idle: Callable[[], None]) -> Optional[Tuple[int, Any]]:
        """The next job, or None once closed and empty; ``idle`` runs while waiting."""
        with self._cond:
            while True:
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    return None
                if not self._cond.wait(_IDLE_PING):
                    self._cond.release()
                    try:
                        idle()
                    finally:
                        self._cond.acquire()

    def answered(self) -> int:
        """A job was answered; returns the credit to ask for with the answer."""
        with self._cond:
            self._held = max(0, self._held - 1)
            return self._top_up(False)

    def _top_up(self, now: bool) -> int:
        if self._closed or self._limit == 0:
            return 0
        have = self._credit + self._held
        free = max(0, self._limit - have)
        if free == 0 or (not now and have > self._limit // 2):
            return 0
        self._credit += free
        return free


class Job:
    """One work item: answer it with :meth:`done` or :meth:`fail` (once)."""

    def __init__(self, worker: "Worker", job_id: int, payload: Any) -> None:
        self._worker = worker
        self.id = job_id
        self.payload = payload
        self._answered = False

    def done(self, result: Any = None) -> None:
        """Reports success with ``result`` (any JSON value; None for none)."""
        frame = {"type": "done", "id": self.id}
        if result is not None:
            frame["result"] = result
        self._answer(frame)

    def fail(self, error: str, retryable: bool = True) -> None:
        """Reports a failure; ``retryable=False`` sends it to the dead letters now."""
        self._answer({"type": "failed", "id": self.id, "error": error, "retryable": retryable})

    @property
    def answered(self) -> bool:
        return self._answered

    def _answer(self, frame: Any) -> None:
        if self._answered:
            raise RuntimeError(f"job {self.id} was answered already")
        self._answered = True
        data = encode_frame(frame)
        more = self._worker._inbox.answered()
        if more > 0:
            data += encode_frame({"type": "want", "n": more})
        self._worker._out.write_line(data)


def iterate(worker: "Worker", credit: int) -> Iterator[Job]:
    """Body of :meth:`Worker.jobs`."""
    worker.listen()
    n = worker._inbox.open(credit)
    if n > 0:
        worker._out.frame({"type": "want", "n": n})
    while True:
        got = worker._inbox.next(worker.ping)
        if got is None:
            return
        yield Job(worker, got[0], got[1])


def serve(worker: "Worker", handler: Callable[[Job], Any], concurrency: int) -> None:
    """Body of :meth:`Worker.serve`."""
    concurrency = max(1, concurrency)
    jobs = iterate(worker, max(2 * concurrency, DEFAULT_JOB_CREDIT))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                job = next(jobs, None)
            if job is None:
                return
            try:
                result = handler(job)
            except JobError as e:
                job.fail(e.message, e.retryable)
            except Exception as e:  # noqa: BLE001 - a handler's failure is the job's
                job.fail(f"{type(e).__name__}: {e}", True)
            else:
                if not job.answered:
                    job.done(result)

    threads = [threading.Thread(target=loop, name=f"distarch-job-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

"""The asyncio API: the same worker, with awaitable stop and sleep.

    import asyncio, distarch_worker.aio as aio

    async def main(worker: aio.AsyncWorker) -> None:
        worker.ready()
        while await worker.sleep(1.0):
            worker.info("tick", id=worker.id)

    aio.run(main)

Frames are written synchronously (a line write is quick); only waiting is async.
The stop flag is raised by the SDK's stdin thread, which wakes the event loop
with ``call_soon_threadsafe``: nothing polls.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, List, NoReturn, Optional

from ._run import finish, start
from ._stop import StopReason
from ._worker import Worker


class AsyncWorker:
    """A :class:`Worker` with ``async`` waiting. Every attribute of the wrapped
    worker (``id``, ``params``, ``info``, ``ready``, ``ping``, ...) is available."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._events: List[asyncio.Event] = []
        self._loops: List[asyncio.AbstractEventLoop] = []
        worker._on_stop(self._wake)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.worker, name)

    def _wake(self) -> None:
        for loop, event in zip(self._loops, self._events):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass  # that loop is closed

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        for known, event in zip(self._loops, self._events):
            if known is loop:
                return event
        event = asyncio.Event()
        self._loops.append(loop)
        self._events.append(event)
        if self.worker.must_stop():
            event.set()
        return event

    async def stopped(self) -> Optional[StopReason]:
        """Completes when the worker must stop; returns why."""
        self.worker.listen()
        await self._event().wait()
        return self.worker.stop_reason

    async def sleep(self, seconds: float) -> bool:
        """Sleeps, waking early on stop. True after a full sleep, False on stop."""
        try:
            await asyncio.wait_for(self.stopped(), seconds)
        except asyncio.TimeoutError:
            return True
        return False


def run(main: Callable[[AsyncWorker], Coroutine[Any, Any, None]]) -> NoReturn:
    """Like :func:`distarch_worker.run` for a coroutine function: builds the worker,
    sends ``hello``, runs ``main`` in a new event loop, sends ``ended`` and exits
    (0, 1 when ``main`` raised, 2 when not started by distarch)."""
    worker = start()
    error: Optional[BaseException] = None
    try:
        asyncio.run(main(AsyncWorker(worker)))
    except Exception as e:  # noqa: BLE001 - reported as an error frame, exit 1
        error = e
    finish(worker, error)

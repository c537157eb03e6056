"""The asyncio API wakes on stop without polling."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Tuple

from conftest import Sink

from distarch_worker import StopReason, Worker
from distarch_worker.aio import AsyncWorker


def test_sleep_wakes_on_a_stop_frame(piped: Tuple[Worker, int, Sink]) -> None:
    worker, stdin, _ = piped

    async def body() -> None:
        aw = AsyncWorker(worker)
        assert await aw.sleep(0.01) is True
        threading.Timer(0.1, os.write, (stdin, b'\x1e{"type":"stop"}\n')).start()
        assert await asyncio.wait_for(aw.sleep(600), 30) is False
        assert await aw.stopped() is StopReason.STOP_REQUESTED
        aw.info("still usable", id=aw.id)

    asyncio.run(body())


def test_stopped_completes_at_once_when_already_stopped(piped: Tuple[Worker, int, Sink]) -> None:
    worker, stdin, _ = piped
    os.close(stdin)
    assert worker.wait_stop(30) is StopReason.MASTER_GONE

    async def body() -> None:
        assert await asyncio.wait_for(AsyncWorker(worker).stopped(), 30) is StopReason.MASTER_GONE

    asyncio.run(body())

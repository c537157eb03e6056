#!/usr/bin/env python3
"""The Python SDK's conformance worker: what `distarch-conformance` runs to check
the SDK (docs/conformance.md describes the contract). With `--asyncio` it runs on
the asyncio API (`distarch_worker.aio`) instead of the blocking one."""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import distarch_worker  # noqa: E402
from distarch_worker import aio  # noqa: E402


def identity(worker: distarch_worker.Worker) -> int:
    """Logs the identity; returns the group count it reported."""
    seen = worker.group_count  # before `ready`: the runner may resize the group right after it
    worker.info(
        "identity",
        id=worker.id, group=worker.group, group_id=worker.group_id,
        group_count=seen, host=worker.host, run_id=worker.run_id,
        restart=worker.restart, params=worker.params,
    )
    return seen


async def amain(aw: aio.AsyncWorker) -> None:
    worker = aw.worker
    seen = identity(worker)
    worker.ready()
    action = worker.params.get("conformance")
    if action == "levels":
        for n, level in enumerate(distarch_worker.LEVELS, 1):
            worker.log(level, f"level {level}", {"n": n})
    elif action == "status":
        worker.status(str(worker.params.get("text", "")))
    elif action == "ping":
        while not worker.must_stop():
            worker.ping()
            await asyncio.sleep(0)
    elif action == "jobs":
        await asyncio.get_running_loop().run_in_executor(None, echo_jobs, worker)
    elif action == "group_count":
        while await aw.sleep(0.02):
            if worker.group_count != seen:
                seen = worker.group_count
                worker.info("group_count", count=seen)
    await aw.stopped()


def echo_jobs(worker: distarch_worker.Worker) -> None:
    """Job pools: echo each payload; fail (not retryable) one with ``fail``."""

    def handle(job: distarch_worker.Job) -> object:
        if isinstance(job.payload, dict) and "fail" in job.payload:
            raise distarch_worker.JobError(str(job.payload["fail"]), retryable=False)
        return job.payload

    worker.serve(handle, concurrency=2)


def main(worker: distarch_worker.Worker) -> None:
    params = worker.params
    seen = identity(worker)
    worker.ready()
    action = params.get("conformance")
    if action == "levels":
        for n, level in enumerate(distarch_worker.LEVELS, 1):
            worker.log(level, f"level {level}", {"n": n})
    elif action == "status":
        worker.status(str(params.get("text", "")))
    elif action == "ping":
        while not worker.must_stop():
            worker.ping()
    elif action == "jobs":
        echo_jobs(worker)
    elif action == "group_count":
        while worker.sleep(0.02):
            if worker.group_count != seen:
                seen = worker.group_count
                worker.info("group_count", count=seen)
    worker.wait_stop()


if __name__ == "__main__":
    if "--asyncio" in sys.argv[1:]:
        aio.run(amain)
    else:
        distarch_worker.run(main)

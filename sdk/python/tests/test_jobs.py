"""Job pools: credit (`want`), `job` frames in, `done`/`failed` out, `serve`."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, List, Tuple

from conftest import Sink

import distarch_worker
from distarch_worker import JobError, Worker

Piped = Tuple[Worker, int, Sink]


def frames(sink: Sink) -> List[Any]:
    return [json.loads(line[1:]) for line in sink.lines() if line.startswith(b"\x1e")]


def wait_for(cond: Any, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def job(job_id: int, payload: Any) -> bytes:
    return b"\x1e" + json.dumps({"type": "job", "id": job_id, "payload": payload}).encode() + b"\n"


def test_jobs_asks_for_credit_yields_jobs_and_tops_up_at_half(piped: Piped) -> None:
    worker, stdin, sink = piped
    jobs = worker.jobs(credit=4)
    got: List[int] = []

    def consume() -> None:
        for j in jobs:
            got.append(j.id)
            j.done({"echo": j.payload})

    t = threading.Thread(target=consume)
    t.start()
    assert wait_for(lambda: any(f["type"] == "want" for f in frames(sink)))
    assert [f for f in frames(sink) if f["type"] == "want"] == [{"type": "want", "n": 4}]
    os.write(stdin, b"".join(job(i, i * 10) for i in range(1, 5)))
    assert wait_for(lambda: len(got) == 4)
    os.write(stdin, b'\x1e{"type":"stop"}\n')
    t.join(30)
    assert not t.is_alive(), "stop ends the iteration"
    out = frames(sink)
    done = [f for f in out if f["type"] == "done"]
    assert done == [{"type": "done", "id": i, "result": {"echo": i * 10}} for i in range(1, 5)]
    wants = [f["n"] for f in out if f["type"] == "want"]
    assert wants[0] == 4 and sum(wants) >= 6, wants


def test_serve_answers_with_results_and_failures(piped: Piped) -> None:
    worker, stdin, sink = piped

    def handle(j: distarch_worker.Job) -> Any:
        if j.payload == "bad":
            raise JobError("bad input", retryable=False)
        if j.payload == "oops":
            raise ValueError("boom")
        return len(j.payload)

    t = threading.Thread(target=worker.serve, args=(handle,), kwargs={"concurrency": 3})
    t.start()
    assert wait_for(lambda: any(f["type"] == "want" for f in frames(sink)))
    os.write(stdin, job(1, "abc") + job(2, "bad") + job(3, "oops"))
    assert wait_for(lambda: len([f for f in frames(sink) if f["type"] in ("done", "failed")]) == 3)
    os.write(stdin, b'\x1e{"type":"stop"}\n')
    t.join(30)
    answers = {f["id"]: f for f in frames(sink) if f["type"] in ("done", "failed")}
    assert answers[1] == {"type": "done", "id": 1, "result": 3}
    assert answers[2] == {"type": "failed", "id": 2, "error": "bad input", "retryable": False}
    assert answers[3]["retryable"] is True and "boom" in answers[3]["error"]


def test_a_job_is_answered_once(piped: Piped) -> None:
    worker, stdin, _ = piped
    it = worker.jobs(credit=1)
    t = threading.Timer(0.1, os.write, (stdin, job(9, None)))
    t.start()
    j = next(it)
    j.done()
    try:
        j.fail("again")
    except RuntimeError:
        pass
    else:
        raise AssertionError("a second answer must be refused")

"""The blocking API: stop, end of stdin, group_count, ping, hello, thread-safe output."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, List, Tuple

from conftest import ENV, Sink

import distarch_worker
from distarch_worker import StopReason, Worker
from distarch_worker._output import LineStream

Piped = Tuple[Worker, int, Sink]


def frames(sink: Sink) -> List[Any]:
    return [json.loads(line[1:]) for line in sink.lines() if line.startswith(b"\x1e")]


def test_hello_comes_first_and_once(piped: Piped) -> None:
    worker, _, sink = piped
    worker.status("loading")
    worker.hello()
    worker.ended()
    got = frames(sink)
    assert [f["type"] for f in got] == ["hello", "status", "ended"]
    assert got[0] == {"type": "hello", "protocol": 1, "sdk": "distarch-worker-python",
                      "version": distarch_worker.__version__}


def test_a_stop_frame_wakes_sleep_at_once(piped: Piped) -> None:
    worker, stdin, _ = piped
    assert worker.sleep(0.01) is True
    assert not worker.must_stop()
    threading.Timer(0.1, os.write, (stdin, b'\x1e{"type":"st')).start()
    threading.Timer(0.2, os.write, (stdin, b'op"}\n')).start()
    started = time.monotonic()
    assert worker.sleep(600) is False
    assert time.monotonic() - started < 30
    assert worker.stop_reason is StopReason.STOP_REQUESTED
    assert worker.must_stop()


def test_end_of_stdin_means_master_gone(piped: Piped) -> None:
    worker, stdin, _ = piped
    os.write(stdin, b"plain\n\x1e{\"type\":\"reload\"}\n")
    os.close(stdin)
    assert worker.wait_stop(30) is StopReason.MASTER_GONE


def test_group_count_follows_the_master(piped: Piped) -> None:
    worker, stdin, _ = piped
    assert worker.group_count == 3
    os.write(stdin, b'\x1e{"type":"group_count","count":8}\n')
    deadline = time.monotonic() + 30
    while worker.group_count != 8:
        assert time.monotonic() < deadline, "group_count never changed"
        worker.sleep(0.01)
    assert not worker.must_stop()


def test_ping_is_rate_limited(piped: Piped) -> None:
    worker, _, sink = piped
    worker.set_ping_interval(3600)
    for _ in range(10_000):
        worker.ping()
    # hello rides with the first ping; the rest are suppressed.
    assert [f["type"] for f in frames(sink)] == ["hello", "ping"]
    worker.set_ping_interval(0)
    worker.ping()
    assert [f["type"] for f in frames(sink)] == ["hello", "ping", "ping"]


def test_a_broken_stdout_means_master_gone(piped: Piped) -> None:
    worker, _, _ = piped

    class Broken(Sink):
        def write(self, b: Any) -> int:
            raise BrokenPipeError()

    worker._out._sink = Broken()  # type: ignore[assignment]
    worker.info("nobody hears this")
    assert worker.stop_reason is StopReason.MASTER_GONE


def test_prints_and_frames_from_many_threads_never_interleave(piped: Piped) -> None:
    worker, _, sink = piped
    stream = LineStream(worker._out)
    barrier = threading.Barrier(8)

    def chatter(n: int) -> None:
        barrier.wait()
        for i in range(300):
            print(f"thread {n} ", end="", file=stream)
            print(f"line {i}", file=stream)
            worker.info("frame", thread=n, i=i)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = sink.lines()
    assert len(lines) == 1 + 8 * 300 * 2
    for line in lines:
        if line.startswith(b"\x1e"):
            json.loads(line[1:])
        else:
            assert line.decode().startswith("thread "), line
            assert b" line " in line


def test_a_partial_print_waits_for_its_newline(piped: Piped) -> None:
    worker, _, sink = piped
    stream = LineStream(worker._out)
    stream.write("half ")
    worker.ready()
    stream.write("done\nnext")
    stream.finish()
    assert [line for line in sink.lines() if not line.startswith(b"\x1e")] == [b"half done", b"next"]


def test_the_logging_handler_sends_fields(piped: Piped) -> None:
    worker, _, sink = piped
    logger = logging.getLogger("conformance.test")
    logger.propagate = False
    handler = distarch_worker.DistarchHandler(worker)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("disk %s", "full", extra={"free": 3})
        logger.debug("plain")
        logger.critical("boom")
        try:
            raise RuntimeError("bad")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    got = frames(sink)[1:]
    assert got[0] == {"type": "log", "level": "warn", "message": "disk full",
                      "fields": {"free": 3, "logger": "conformance.test"}}
    assert (got[1]["level"], got[1]["message"]) == ("debug", "plain")
    assert got[2]["level"] == "error"
    assert got[3]["level"] == "error" and "RuntimeError: bad" in got[3]["message"]


def test_from_env_refuses_a_missing_variable() -> None:
    env = dict(ENV)
    del env["DISTARCH_HOST"]
    try:
        Worker.from_env(env, capture_stdout=False)
    except distarch_worker.WorkerError as e:
        assert "DISTARCH_HOST" in str(e)
    else:
        raise AssertionError("no error")

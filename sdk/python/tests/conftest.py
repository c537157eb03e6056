"""Shared helpers: the package from src/, the repository's vectors, a worker on pipes."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import distarch_worker  # noqa: E402

REPO = HERE.parent.parent.parent
VECTORS = REPO / "conformance" / "vectors"

ENV: Dict[str, str] = {
    "DISTARCH_PROTOCOL": "1",
    "DISTARCH_RUN_ID": "r1x9",
    "DISTARCH_ID": "4",
    "DISTARCH_GROUP": "first",
    "DISTARCH_GROUP_ID": "2",
    "DISTARCH_GROUP_COUNT": "3",
    "DISTARCH_HOST": "localhost",
    "DISTARCH_RESTART": "0",
    "DISTARCH_PARAMS": '{"message":"Hello World!","n":7}',
}


def vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


class Sink(io.RawIOBase):
    """A thread-safe byte sink standing in for stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        with self.lock:
            self.data += bytes(b)
        return len(b)

    def lines(self) -> List[bytes]:
        with self.lock:
            return bytes(self.data).split(b"\n")[:-1]


@pytest.fixture
def piped() -> Iterator[Tuple[distarch_worker.Worker, int, Sink]]:
    """A worker whose stdin is a pipe (the test holds its write end) and whose
    stdout is a Sink; stdout is not captured."""
    read_fd, write_fd = os.pipe()
    sink = Sink()
    worker = distarch_worker.Worker.from_env(
        ENV, stdin_fd=read_fd, stdout=sink, capture_stdout=False, master_gone_exit=None  # type: ignore[arg-type]
    )
    try:
        yield worker, write_fd, sink
    finally:
        for fd in (write_fd,):
            try:
                os.close(fd)
            except OSError:
                pass

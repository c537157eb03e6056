"""Writing to stdout: whole lines, one writer at a time, and the ping rate limit.

Frames and plain lines share one lock. :class:`LineStream` replaces
``sys.stdout`` so that ``print`` from any thread is held until its line is
complete and then written whole under that lock: a frame can never land in the
middle of a printed line, nor two printed lines inside each other.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, BinaryIO, Callable, Mapping, Optional

from ._frames import encode_frame


class Output:
    """The one place that writes lines to the master."""

    def __init__(self, sink: BinaryIO, on_broken: Callable[[], None]) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._on_broken = on_broken
        self._last_write = float("-inf")
        self._hello: Optional[bytes] = None
        self.ping_interval = 1.0

    def set_hello(self, frame: Mapping[str, Any]) -> None:
        """The ``hello`` frame written before the first line, whatever it is."""
        self._hello = encode_frame(frame)

    def write_line(self, data: bytes) -> bool:
        """Writes one whole line (``data`` ends with ``\\n``); False when the master
        is gone (stdout broken)."""
        with self._lock:
            try:
                if self._hello is not None:
                    data, self._hello = self._hello + data, None
                _write_all(self._sink, data)
                self._sink.flush()
            except (BrokenPipeError, ValueError, OSError):
                # ValueError: the stream was closed. Nobody reads us: the master is gone.
                broken = True
            else:
                broken = False
            self._last_write = time.monotonic()
        if broken:
            self._on_broken()
        return not broken

    def frame(self, frame: Mapping[str, Any]) -> bool:
        """Writes one frame."""
        return self.write_line(encode_frame(frame))

    def ping(self) -> bool:
        """Writes a ``ping`` unless any line was written less than the ping interval
        ago; True when sent. The common case is one clock read and a comparison."""
        if time.monotonic() - self._last_write < self.ping_interval:
            return False
        return self.frame({"type": "ping"})

    def hello_now(self) -> None:
        """Writes ``hello`` if it was not written yet."""
        with self._lock:
            pending = self._hello is not None
        if pending:
            self.write_line(b"")


def _write_all(sink: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = sink.write(view)
        if written is None:  # a non-blocking sink that would block: retry
            continue
        view = view[written:]


class LineStream(io.TextIOBase):
    """A text stream (for ``sys.stdout``) that writes only whole lines, through
    :class:`Output`. Each thread's partial line waits for its newline; what is left
    when the program ends is written with a newline by :meth:`close`."""

    def __init__(self, output: Output, encoding: str = "utf-8") -> None:
        super().__init__()
        self._output = output
        self._encoding = encoding
        self._pending = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        pending: str = getattr(self._pending, "text", "") + text
        cut = pending.rfind("\n")
        if cut >= 0:
            whole, pending = pending[: cut + 1], pending[cut + 1 :]
            for line in whole.splitlines(keepends=True):
                self._output.write_line(line.encode(self._encoding, "replace"))
        self._pending.text = pending
        return len(text)

    def flush(self) -> None:
        # A partial line stays pending: writing it now would glue the next frame to it.
        pass

    def finish(self) -> None:
        """Writes this thread's partial line, ended by a newline."""
        pending: str = getattr(self._pending, "text", "")
        if pending:
            self._pending.text = ""
            self._output.write_line((pending + "\n").encode(self._encoding, "replace"))

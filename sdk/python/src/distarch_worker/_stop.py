"""The stop flag, and the background thread that reads the master's frames (§6)."""

from __future__ import annotations

import enum
import os
import threading
from typing import Callable, List, Optional

import json

from ._frames import parse_master_line
from ._jobs import Inbox

#: Exit code when the SDK ends the process because the master is gone.
MASTER_GONE_EXIT_CODE = 3
#: Longest line kept from the master: control frames are tiny, a ``job`` frame
#: carries one input record (at most 1 MiB).
_MAX_MASTER_LINE = 2 * 1024 * 1024


class StopReason(enum.Enum):
    """Why a worker should stop."""

    #: The master sent ``stop``: finish the current work and exit cleanly.
    STOP_REQUESTED = "stop requested"
    #: The master is gone (stdin reached its end, or stdout broke): exit now.
    MASTER_GONE = "master gone"


class StopSignal:
    """A flag raised once, that threads wait on without polling."""

    def __init__(self, group_count: int) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: Optional[StopReason] = None
        self._callbacks: List[Callable[[], None]] = []
        self.group_count = group_count
        self.exit_grace: Optional[float] = 5.0
        #: Where ``job`` frames go (job pools).
        self.inbox: Optional[Inbox] = None

    @property
    def reason(self) -> Optional[StopReason]:
        return self._reason

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float]) -> bool:
        return self._event.wait(timeout)

    def raise_(self, reason: StopReason) -> None:
        """Records ``reason``; ``MASTER_GONE`` overrides ``STOP_REQUESTED``."""
        with self._lock:
            if self._reason is not StopReason.MASTER_GONE:
                self._reason = reason
            callbacks = list(self._callbacks)
        self._event.set()
        for callback in callbacks:
            callback()

    def on_raise(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` (from the raising thread) on every raise."""
        with self._lock:
            self._callbacks.append(callback)
        if self._event.is_set():
            callback()

    def feed(self, line: bytes) -> None:
        """Acts on one line from the master."""
        if self.inbox is not None and line.startswith(b"\x1e") and b'"job"' in line[:64]:
            try:
                obj = json.loads(line[1:].decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(obj, dict) and obj.get("type") == "job":
                job_id = obj.get("id")
                if isinstance(job_id, int) and not isinstance(job_id, bool):
                    self.inbox.push(job_id, obj.get("payload"))
                return
        frame = parse_master_line(line)
        if frame is None:
            return
        kind, count = frame
        if kind == "stop":
            self.raise_(StopReason.STOP_REQUESTED)
            if self.inbox is not None:
                self.inbox.close()
        elif kind == "group_count" and count is not None:
            self.group_count = count


def listen(fd: int, signal: StopSignal) -> None:
    """Body of the stdin thread: reads ``fd`` until its end, then raises
    ``MASTER_GONE`` and, unless disabled, ends the process after the grace.

    It reads the descriptor itself, not ``sys.stdin``: a daemon thread blocked in
    ``sys.stdin``'s buffered reader can crash the interpreter at exit.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            signal.feed(line)
        if len(pending) > _MAX_MASTER_LINE:
            pending = b"\x00"  # an overlong line is no frame; drop it up to its newline
    if pending:
        signal.feed(pending)
    signal.raise_(StopReason.MASTER_GONE)
    if signal.inbox is not None:
        signal.inbox.close()
    grace = signal.exit_grace
    if grace is not None:
        threading.Event().wait(grace)
        os._exit(MASTER_GONE_EXIT_CODE)

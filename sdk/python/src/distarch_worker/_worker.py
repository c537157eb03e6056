"""`Worker`: identity, frames and the stop flag of one instance."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, BinaryIO, Callable, Dict, Iterator, Mapping, Optional, TextIO, cast

from ._env import Identity
from ._jobs import DEFAULT_JOB_CREDIT, Inbox, Job, iterate, serve
from ._frames import hello_frame, log_frame
from ._output import LineStream, Output
from ._stop import StopReason, StopSignal, listen

SDK_NAME = "distarch-worker-python"
__version__ = "0.1.0"


class Worker:
    """One running instance, as seen from inside.

    Build it with :meth:`from_env`. Thread-safe: share it with every thread that
    logs or checks :meth:`must_stop`. Frames and ``print`` output never interleave
    (``sys.stdout`` is replaced by a line-atomic stream unless ``capture_stdout``
    is False).
    """

    def __init__(
        self,
        identity: Identity,
        *,
        stdin_fd: int = 0,
        stdout: Optional[BinaryIO] = None,
        capture_stdout: bool = True,
        master_gone_exit: Optional[float] = 5.0,
    ) -> None:
        self._identity = identity
        self._stop = StopSignal(identity.group_count)
        self._stop.exit_grace = master_gone_exit
        self._inbox = Inbox()
        self._stop.inbox = self._inbox
        if capture_stdout and sys.stdout is not None:
            sys.stdout.flush()  # what was printed before us goes out first
        # Unbuffered fd 1 by default: one write call per line.
        sink = stdout if stdout is not None else cast(BinaryIO, open(1, "wb", buffering=0, closefd=False))
        self._out = Output(sink, lambda: self._stop.raise_(StopReason.MASTER_GONE))
        self._out.set_hello(hello_frame(SDK_NAME, __version__))
        self._stdin_fd = stdin_fd
        self._listening = False
        self._listen_lock = threading.Lock()
        self._stream: Optional[LineStream] = None
        if capture_stdout:
            self._stream = LineStream(self._out)
            sys.stdout = cast(TextIO, self._stream)

    @classmethod
    def from_env(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        *,
        stdin_fd: int = 0,
        stdout: Optional[BinaryIO] = None,
        capture_stdout: bool = True,
        master_gone_exit: Optional[float] = 5.0,
    ) -> "Worker":
        """Builds the worker from the ``DISTARCH_*`` variables (``os.environ`` by
        default). Raises :class:`WorkerError` naming the variable when one is
        missing or malformed. ``master_gone_exit``: seconds after the end of stdin
        before the SDK ends the process with exit code 3 (None: never)."""
        identity = Identity.from_env(os.environ if environ is None else environ)
        return cls(
            identity,
            stdin_fd=stdin_fd,
            stdout=stdout,
            capture_stdout=capture_stdout,
            master_gone_exit=master_gone_exit,
        )

    # Identity -------------------------------------------------------------

    @property
    def id(self) -> int:
        """Instance id: 1-based, unique across the whole run."""
        return self._identity.id

    @property
    def group_id(self) -> int:
        """1-based index of this instance within its group."""
        return self._identity.group_id

    @property
    def group_count(self) -> int:
        """Instances in the group: ``DISTARCH_GROUP_COUNT``, then the count of the
        latest ``group_count`` frame (the group was scaled)."""
        self.listen()
        return self._stop.group_count

    @property
    def group(self) -> str:
        """Name of the group."""
        return self._identity.group

    @property
    def host(self) -> str:
        """Label of where this instance runs."""
        return self._identity.host

    @property
    def run_id(self) -> str:
        """Short random id of the run."""
        return self._identity.run_id

    @property
    def restart(self) -> int:
        """How many times this instance was restarted before (0 on the first start)."""
        return self._identity.restart

    @property
    def protocol(self) -> int:
        """The protocol version the master speaks."""
        return self._identity.protocol

    @property
    def params(self) -> Dict[str, Any]:
        """The group's params (a dict parsed from ``DISTARCH_PARAMS``)."""
        return self._identity.params

    # Stopping -------------------------------------------------------------

    def listen(self) -> None:
        """Starts the thread that reads the master's frames (once)."""
        with self._listen_lock:
            if self._listening:
                return
            self._listening = True
        threading.Thread(
            target=listen, args=(self._stdin_fd, self._stop), name="distarch-stdin", daemon=True
        ).start()

    def must_stop(self) -> bool:
        """True once the worker should stop: the master sent ``stop``, or is gone."""
        self.listen()
        return self._stop.is_set()

    @property
    def stop_reason(self) -> Optional[StopReason]:
        """Why the worker should stop, or None while it should go on."""
        self.listen()
        return self._stop.reason

    def sleep(self, seconds: float) -> bool:
        """Sleeps, waking at once when the worker must stop. True after a full
        sleep, False when it must stop: ``while worker.sleep(1): ...`` is a work loop."""
        self.listen()
        return not self._stop.wait(seconds)

    def wait_stop(self, timeout: Optional[float] = None) -> Optional[StopReason]:
        """Blocks until the worker must stop (or ``timeout``); returns why."""
        self.listen()
        self._stop.wait(timeout)
        return self._stop.reason

    def request_stop(self) -> None:
        """Raises the stop flag from inside (a signal handler, for example)."""
        self._stop.raise_(StopReason.STOP_REQUESTED)

    def set_master_gone_exit(self, seconds: Optional[float]) -> None:
        """Seconds between the end of stdin and the SDK's exit(3); None: never."""
        self._stop.exit_grace = seconds

    # Frames ---------------------------------------------------------------

    def hello(self) -> None:
        """Sends ``hello`` unless sent already (every first line is preceded by it)."""
        self._out.hello_now()

    def ping(self) -> None:
        """Sends ``ping`` unless a line was sent less than a second ago: cheap in a
        hot loop."""
        self._out.ping()

    def set_ping_interval(self, seconds: float) -> None:
        """Shortest time between two pings (default 1 s)."""
        self._out.ping_interval = seconds

    def log(self, level: str, message: str, fields: Optional[Mapping[str, Any]] = None) -> None:
        """Sends a ``log`` frame; ``level``: trace, debug, info, warn or error."""
        self._out.frame(log_frame(level, message, fields))

    def trace(self, message: str, **fields: Any) -> None:
        """A ``log`` frame at ``trace``, with ``fields`` as keyword arguments."""
        self.log("trace", message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        """A ``log`` frame at ``debug``."""
        self.log("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        """A ``log`` frame at ``info``."""
        self.log("info", message, fields)

    def warn(self, message: str, **fields: Any) -> None:
        """A ``log`` frame at ``warn``."""
        self.log("warn", message, fields)

    warning = warn

    def error(self, message: str, **fields: Any) -> None:
        """A ``log`` frame at ``error``."""
        self.log("error", message, fields)

    def ready(self) -> None:
        """Sends ``ready`` (start-up is done) and starts listening to the master."""
        self.listen()
        self._out.frame({"type": "ready"})

    def status(self, text: str) -> None:
        """Sends a short free-text ``status``."""
        self._out.frame({"type": "status", "text": text})

    def ended(self) -> None:
        """Sends ``ended``: the worker is about to exit on purpose. :func:`run` does it."""
        if self._stream is not None:
            self._stream.finish()
        self._out.frame({"type": "ended"})

    def print(self, text: str) -> None:
        """Writes ``text`` as a plain line (an ``info`` log for the master)."""
        self._out.write_line((text + "\n").encode("utf-8", "replace"))

    # Jobs -------------------------------------------------------------------

    def jobs(self, credit: int = DEFAULT_JOB_CREDIT) -> Iterator[Job]:
        """The jobs the master hands out (job pools, docs/protocol.md §12), holding
        at most ``credit`` at a time; it ends on ``stop`` or when the master is gone.
        Answer each with ``job.done(result)`` or ``job.fail(error, retryable)``."""
        return iterate(self, credit)

    def serve(self, handler: Callable[[Job], Any], concurrency: int = 1) -> None:
        """Runs ``handler(job)`` on every job, on ``concurrency`` threads, until
        ``stop``: its return value is the result, a raised :class:`JobError` (or any
        exception, retryable) the failure."""
        serve(self, handler, concurrency)

    def _on_stop(self, callback: Any) -> None:
        self._stop.on_raise(callback)

"""`run`: the whole life of a worker process in one call."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Callable, NoReturn, Optional

from ._env import WorkerError
from ._worker import Worker

#: Exit code when the work returned normally.
SUCCESS_EXIT_CODE = 0
#: Exit code when the work raised.
FAILURE_EXIT_CODE = 1
#: Exit code when the program was not started by distarch.
NOT_STARTED_BY_DISTARCH_EXIT_CODE = 2


def start() -> Worker:
    """Builds the worker from the environment (exit 2 with a message on stderr
    when that fails), sends ``hello``, listens, and makes SIGTERM a stop request."""
    try:
        worker = Worker.from_env()
    except WorkerError as e:
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "worker"
        sys.stderr.write(f"{program}: {e}\n")
        sys.stderr.flush()
        sys.exit(NOT_STARTED_BY_DISTARCH_EXIT_CODE)
    worker.hello()
    worker.listen()
    if threading.current_thread() is threading.main_thread():
        # PID 1 in a container has no default SIGTERM action: make it a stop.
        signal.signal(signal.SIGTERM, lambda _sig, _frame: worker.request_stop())
    return worker


def finish(worker: Worker, error: Optional[BaseException]) -> NoReturn:
    """Reports ``error`` (if any), sends ``ended`` and exits."""
    code = SUCCESS_EXIT_CODE
    if error is not None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        worker.log("error", f"{error}", {"exception": type(error).__name__, "traceback": text})
        code = FAILURE_EXIT_CODE
    worker.ended()
    sys.exit(code)


def run(main: Callable[[Worker], None]) -> NoReturn:
    """Runs a worker: builds it from the environment, sends ``hello``, starts
    listening to the master, calls ``main(worker)``, sends ``ended`` and exits.

    Exit codes: 0 when ``main`` returns, 1 when it raises (the exception goes out
    as an ``error`` log frame), 2 when not started by distarch (message on
    stderr), 3 when the master is gone and ``main`` does not return within 5 s.
    SIGTERM is a stop request, like the ``stop`` frame.
    """
    worker = start()
    error: Optional[BaseException] = None
    try:
        main(worker)
    except Exception as e:  # noqa: BLE001 - reported as an error frame, exit 1
        error = e
    finish(worker, error)

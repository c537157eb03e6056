"""distarch worker SDK for Python: what a program started by distarch uses to know
who it is, to log, to say it is alive and to stop cleanly.

How it works: distarch starts each instance with ``DISTARCH_*`` environment
variables (id, group, params, ...); :meth:`Worker.from_env` parses them. What the
worker tells the master (``hello``, logs, ``ready``, ``ping``, ``status``,
``ended``) is a *frame*: one stdout line made of the byte 0x1E and a JSON object.
Frames and ``print`` output go through one lock, whole lines only, so they never
interleave. A daemon thread reads stdin: a ``stop`` frame or the end of stdin
(the master is gone) raises a stop flag that :meth:`Worker.must_stop` reads and
:meth:`Worker.sleep` wakes on; a ``group_count`` frame updates
:attr:`Worker.group_count`. The program never reads stdin itself. When the master
is gone the SDK ends the process after 5 s (exit code 3) if the program has not.
docs/protocol.md in the distarch repository is the normative description::

    import distarch_worker

    def main(worker: distarch_worker.Worker) -> None:
        worker.ready()
        while worker.sleep(1.0):
            worker.info("working", id=worker.id, of=worker.group_count)

    distarch_worker.run(main)
"""

from ._env import VARIABLES, Identity, WorkerError
from ._jobs import DEFAULT_JOB_CREDIT, Job, JobError
from ._frames import LEVELS, PROTOCOL_VERSION, encode_frame, parse_master_line
from ._logging import DistarchHandler, install_logging
from ._run import (
    FAILURE_EXIT_CODE,
    NOT_STARTED_BY_DISTARCH_EXIT_CODE,
    SUCCESS_EXIT_CODE,
    run,
)
from ._stop import MASTER_GONE_EXIT_CODE, StopReason
from ._worker import SDK_NAME, Worker, __version__

__all__ = [
    "DEFAULT_JOB_CREDIT",
    "DistarchHandler",
    "Job",
    "JobError",
    "FAILURE_EXIT_CODE",
    "Identity",
    "LEVELS",
    "MASTER_GONE_EXIT_CODE",
    "NOT_STARTED_BY_DISTARCH_EXIT_CODE",
    "PROTOCOL_VERSION",
    "SDK_NAME",
    "SUCCESS_EXIT_CODE",
    "StopReason",
    "VARIABLES",
    "Worker",
    "WorkerError",
    "__version__",
    "encode_frame",
    "install_logging",
    "parse_master_line",
    "run",
]

#!/usr/bin/env python3
"""A distarch worker in Python, on the Python SDK (sdk/python, `distarch-worker`).

It logs who it is (a log frame with fields, through `logging`, and a plain line),
sends `ready`, then works (a plain line, a `status` and a `ping` every second)
until the master sends `stop` or goes away; a `group_count` frame (the group was
scaled) is logged. `distarch_worker.run` sends `hello` first and `ended` last,
and exits 0 (1 if `main` raises, 2 when not started by distarch).

Install the SDK with `pip install ./sdk/python`; run from a checkout, this file
also finds it next to itself.
"""

import logging
import os
import sys

try:
    import distarch_worker
except ImportError:  # not installed: use the copy in this repository
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "sdk", "python", "src"))
    import distarch_worker

log = logging.getLogger("python-worker")


def main(worker: distarch_worker.Worker) -> None:
    distarch_worker.install_logging(worker, logger=log)
    message = str(worker.params.get("message", "hello"))
    log.info(message, extra={
        "id": worker.id, "group": worker.group, "group_id": worker.group_id,
        "group_count": worker.group_count, "host": worker.host,
        "run_id": worker.run_id, "restart": worker.restart, "params": worker.params,
    })
    print(f"instance {worker.id} is {worker.group_id} of {worker.group_count}"
          f" in group {worker.group} on {worker.host}")
    sys.stderr.write("python-worker: a line on stderr, shown by the master at warn\n")
    sys.stderr.flush()
    worker.ready()

    step, count = 0, worker.group_count
    while not worker.must_stop():
        step += 1
        print(f"working: step {step}")
        worker.status(f"step {step}")
        worker.ping()
        if worker.group_count != count:
            count = worker.group_count
            log.info("group_count", extra={"count": count})
        worker.sleep(1.0)  # wakes at once on stop or when the master is gone

    reason = worker.stop_reason
    print(f"stopping: {reason.value if reason else 'done'}")


if __name__ == "__main__":
    distarch_worker.run(main)

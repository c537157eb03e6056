#!/usr/bin/env python3
"""The Python SDK's side of bench/sdk.sh: `params.frames` log frames with two
fields, as fast as it can, then ends (0 frames: start time only)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python", "src"))

import distarch_worker  # noqa: E402


def main(worker: distarch_worker.Worker) -> None:
    worker.ready()
    log = worker.log
    for i in range(int(worker.params.get("frames", 0))):
        log("info", "frame", {"i": i, "sdk": "python"})


distarch_worker.run(main)

#!/usr/bin/env python3
"""A distarch worker in Python 3 (standard library only), with no SDK.

It speaks protocol v1 as described in docs/protocol.md: logs who it is, sends
`ready`, then works (one plain line, a `status` and a `ping` every second) until
the master sends `stop` or goes away (stdin reaches EOF); then it sends `ended`
and exits 0. Exit code 2 when not started by distarch.
"""

import json
import os
import sys
import threading

FRAME_MARKER = "\x1e"
_out_lock = threading.Lock()


def frame(obj):
    """Writes one frame: the marker, compact JSON, a newline; whole and flushed."""
    line = FRAME_MARKER + json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def plain(text):
    """Writes a plain line; the master shows it as an info log."""
    with _out_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def log(level, message, **fields):
    obj = {"type": "log", "level": level, "message": message}
    if fields:
        obj["fields"] = fields
    frame(obj)


def identity():
    """Reads the DISTARCH_* variables; exits 2 when they are missing or bad."""
    def fail(text):
        sys.stderr.write("python-worker: " + text + "\n")
        sys.exit(2)

    if "DISTARCH_ID" not in os.environ:
        fail("not started by distarch: DISTARCH_ID is not set")
    if os.environ.get("DISTARCH_PROTOCOL") != "1":
        fail("unsupported protocol version %r (this worker speaks 1)"
             % os.environ.get("DISTARCH_PROTOCOL"))
    me = {}
    for name in ("ID", "GROUP_ID", "GROUP_COUNT", "RESTART"):
        var = "DISTARCH_" + name
        try:
            me[name.lower()] = int(os.environ[var])
        except (KeyError, ValueError):
            fail("%s is not set or not a number" % var)
    for name in ("RUN_ID", "GROUP", "HOST"):
        me[name.lower()] = os.environ.get("DISTARCH_" + name, "")
    try:
        params = json.loads(os.environ.get("DISTARCH_PARAMS") or "{}")
    except ValueError as e:
        fail("DISTARCH_PARAMS is not valid JSON: %s" % e)
    if not isinstance(params, dict):
        fail("DISTARCH_PARAMS is not a JSON object")
    me["params"] = params
    return me


class Stop:
    """Set by the stdin thread on a `stop` frame or at EOF (master gone)."""

    def __init__(self):
        self.event = threading.Event()
        self.reason = None

    def set(self, reason):
        if self.reason != "master gone":
            self.reason = reason
        self.event.set()


def read_master(stop):
    """Reads the master's frames; unknown frames and plain lines are ignored.

    It reads the file descriptor directly (not sys.stdin): a daemon thread blocked
    inside sys.stdin's buffered reader can crash the interpreter at exit.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(0, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        pending = pending[-1048576:]  # never keep more than 1 MiB of a line
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line.startswith(b"\x1e"):
                continue
            try:
                msg = json.loads(line[1:])
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("type") == "stop":
                stop.set("stop requested")
    stop.set("master gone")


def main():
    me = identity()
    message = me["params"].get("message", "hello")
    log("info", str(message), id=me["id"], group=me["group"],
        group_id=me["group_id"], group_count=me["group_count"], params=me["params"])
    plain("instance %d is %d of %d in group %s on %s"
          % (me["id"], me["group_id"], me["group_count"], me["group"], me["host"]))
    sys.stderr.write("python-worker: a line on stderr, shown by the master at warn\n")
    sys.stderr.flush()

    stop = Stop()
    threading.Thread(target=read_master, args=(stop,), daemon=True).start()
    frame({"type": "ready"})

    step = 0
    while not stop.event.is_set():
        step += 1
        plain("working: step %d" % step)
        frame({"type": "status", "text": "step %d" % step})
        frame({"type": "ping"})
        stop.event.wait(1.0)  # wakes at once on stop or EOF

    plain("stopping: %s" % stop.reason)
    try:
        frame({"type": "ended"})
    except BrokenPipeError:
        pass  # the master is gone: nobody to tell
    return 0


if __name__ == "__main__":
    sys.exit(main())

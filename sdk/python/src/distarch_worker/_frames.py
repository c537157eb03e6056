"""Encoding worker frames and reading master frames (docs/protocol.md, §3-§6)."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Tuple, Union

FRAME_MARKER = "\x1e"
PROTOCOL_VERSION = 1
LEVELS = ("trace", "debug", "info", "warn", "error")

#: A master frame a worker acts on: ``("stop", None)`` or ``("group_count", n)``.
MasterFrame = Tuple[str, Optional[int]]


def _fallback(value: object) -> str:
    """JSON for values json cannot encode (dates, paths, ...): their ``str``."""
    return str(value)


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    """One frame as one line: the marker, compact JSON, ``\\n``, in UTF-8.

    Members are written in the mapping's order (``type`` first, as the SDK builds
    them); non-ASCII text is written as is, as the other SDKs do, so that the
    bytes match conformance/vectors/frames.json.
    """
    try:
        text = json.dumps(
            frame, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_fallback
        )
    except ValueError:
        # NaN or infinity somewhere in the fields: not JSON; send them as text.
        text = json.dumps(
            _stringify_floats(frame), separators=(",", ":"), ensure_ascii=False, default=_fallback
        )
    return (FRAME_MARKER + text + "\n").encode("utf-8", "replace")


def _stringify_floats(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _stringify_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stringify_floats(v) for v in value]
    return value


def hello_frame(sdk: str, version: str) -> Dict[str, Any]:
    """The ``hello`` frame."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "sdk": sdk, "version": version}


def log_frame(
    level: str, message: str, fields: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """A ``log`` frame; ``level`` is one of :data:`LEVELS`."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (expected one of {', '.join(LEVELS)})")
    frame: Dict[str, Any] = {"type": "log", "level": level, "message": message}
    if fields:
        frame["fields"] = dict(fields)
    return frame


def parse_master_line(line: Union[bytes, str]) -> Optional[MasterFrame]:
    """What a line from the master means: ``("stop", None)``, ``("group_count", n)``,
    or ``None`` for anything a worker ignores (plain text, unknown or malformed frames).
    """
    if isinstance(line, str):
        line = line.encode("utf-8", "replace")
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.startswith(b"\x1e"):
        return None
    try:
        obj = json.loads(line[1:].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "stop":
        return ("stop", None)
    if kind == "group_count":
        count = obj.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return ("group_count", count)
    return None

"""Who the worker is: the ``DISTARCH_*`` environment variables, parsed (§2)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

from ._frames import PROTOCOL_VERSION

VARIABLES = (
    "DISTARCH_PROTOCOL",
    "DISTARCH_RUN_ID",
    "DISTARCH_ID",
    "DISTARCH_GROUP",
    "DISTARCH_GROUP_ID",
    "DISTARCH_GROUP_COUNT",
    "DISTARCH_HOST",
    "DISTARCH_RESTART",
    "DISTARCH_PARAMS",
)

_DIGITS = re.compile(r"[0-9]+")


class WorkerError(Exception):
    """The program was not started by distarch, or its variables are unusable.

    The message names the variable, e.g. ``not started by distarch: DISTARCH_ID is
    not set`` or ``DISTARCH_ID has an invalid value `abc`: not a number``.
    """


@dataclass(frozen=True)
class Identity:
    """The parsed ``DISTARCH_*`` variables of one instance."""

    protocol: int
    run_id: str
    id: int
    group: str
    group_id: int
    group_count: int
    host: str
    restart: int
    params: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Identity":
        """Reads every variable; ``DISTARCH_ID`` first, so that a program started by
        hand is told "not started by distarch"."""

        def required(name: str) -> str:
            value = environ.get(name)
            if value is None:
                raise WorkerError(f"not started by distarch: {name} is not set")
            return value

        ident = _number("DISTARCH_ID", required("DISTARCH_ID"), minimum=1)
        protocol = _number("DISTARCH_PROTOCOL", required("DISTARCH_PROTOCOL"), minimum=0)
        if protocol != PROTOCOL_VERSION:
            raise WorkerError(
                f"DISTARCH_PROTOCOL: unsupported protocol version {protocol}"
                f" (this worker speaks version {PROTOCOL_VERSION})"
            )
        run_id = required("DISTARCH_RUN_ID")
        group = required("DISTARCH_GROUP")
        group_id = _number("DISTARCH_GROUP_ID", required("DISTARCH_GROUP_ID"), minimum=1)
        group_count = _number("DISTARCH_GROUP_COUNT", required("DISTARCH_GROUP_COUNT"), minimum=1)
        host = required("DISTARCH_HOST")
        restart = _number("DISTARCH_RESTART", required("DISTARCH_RESTART"), minimum=0)
        params = _params(required("DISTARCH_PARAMS"))
        return cls(protocol, run_id, ident, group, group_id, group_count, host, restart, params)


def _number(name: str, value: str, minimum: int) -> int:
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise WorkerError(f"{name} has an invalid value `{value}`: not a number")
    number = int(text)
    if number < minimum:
        raise WorkerError(f"{name} has an invalid value `{value}`: must be at least {minimum}")
    return number


def _params(value: str) -> Dict[str, Any]:
    # An empty value is an empty object: a shell may not be able to pass `{}` easily.
    if not value.strip():
        return {}
    try:
        params = json.loads(value)
    except ValueError as e:
        raise WorkerError(f"DISTARCH_PARAMS has an invalid value: {e}") from None
    if not isinstance(params, dict):
        raise WorkerError("DISTARCH_PARAMS has an invalid value: not a JSON object")
    return params

"""A ``logging.Handler`` that turns records into ``log`` frames with fields."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from ._worker import Worker

#: Attributes every LogRecord has; the others came from ``extra=`` and are fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def level_name(levelno: int) -> str:
    """The protocol level of a ``logging`` level number."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


class DistarchHandler(logging.Handler):
    """Sends each record as a ``log`` frame: ``logger.warning("disk %s", "full",
    extra={"free": 3})`` becomes ``{"type":"log","level":"warn","message":"disk
    full","fields":{"free":3,"logger":"app"}}``. CRITICAL is ``error``, levels
    below DEBUG are ``trace``; an exception's traceback is appended to the message.
    """

    def __init__(self, worker: Worker, level: int = logging.NOTSET, logger_field: bool = True):
        super().__init__(level)
        self._worker = worker
        self._logger_field = logger_field

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                message += "\n" + record.exc_text
            fields: Dict[str, Any] = {
                k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
            }
            if self._logger_field and record.name != "root":
                fields.setdefault("logger", record.name)
            self._worker.log(level_name(record.levelno), message, fields)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def install_logging(
    worker: Worker, level: int = logging.INFO, logger: Optional[logging.Logger] = None
) -> DistarchHandler:
    """Adds a :class:`DistarchHandler` to ``logger`` (the root logger by default)
    and sets its level; returns the handler."""
    target = logger if logger is not None else logging.getLogger()
    handler = DistarchHandler(worker)
    target.addHandler(handler)
    target.setLevel(level)
    return handler

"""Structured (JSON) log lines on stdout, as Cloud Functions reads them, with secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

_SEVERITY = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}
_MASK = "[redacted]"
_secrets: set[str] = set()


def mask_secret(value: str) -> None:
    """Never let ``value`` reach a log line, even by accident."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret masked."""
    for secret in _secrets:
        text = text.replace(secret, _MASK)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``severity``, ``message``, ``logger`` and any ``json_fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(getattr(record, "json_fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class PlainFormatter(logging.Formatter):
    """``warning: message`` for a person at a terminal (``check``), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(f"{record.levelname.lower()}: {record.getMessage()}")


def configure(stream: TextIO = sys.stdout, level: int = logging.INFO, *, plain: bool = False) -> None:
    """Send every log record to ``stream`` as JSON (or plain text); quiet the chatty client libraries."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PlainFormatter() if plain else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("looker_sdk", "urllib3", "google", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

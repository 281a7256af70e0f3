"""The Cloud Function's work for one Pub/Sub tick: age check, one export run, one summary line."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from .config import Config
from .export.run import Exporter
from .export.summary import ExportError, RunSummary
from .values import parse_looker_time
from .wiring import build_exporter

log = logging.getLogger("looker_audit_export")
#: The instance's exporter, built on the first tick; None again makes the next tick a cold instance's (tests).
instance_exporter: Exporter | None = None


def message_time(event_time: Any, data: Any) -> datetime | None:
    """When Pub/Sub published the tick: the message's publishTime, else the CloudEvent time."""
    message = data.get("message") if isinstance(data, dict) else None
    published = message.get("publishTime") if isinstance(message, dict) else None
    return parse_looker_time(published) or parse_looker_time(event_time)


def exporter() -> Exporter:
    """The instance's exporter, built on the first tick: one secret fetch and one login per instance."""
    global instance_exporter
    if instance_exporter is None:
        instance_exporter = build_exporter(Config.from_env(os.environ))
    return instance_exporter


def _max_age(run: Exporter | None) -> int:
    """MAX_MESSAGE_AGE_SECONDS, also when the configuration as a whole is invalid."""
    if run is not None:
        return run.config.max_message_age_seconds
    return Config.max_message_age(os.environ)


def handle_tick(event_time: Any, data: Any, now: datetime | None = None) -> RunSummary | None:
    """Run one export for a tick; raise so that Pub/Sub redelivers when anything was left unwritten.

    Every run logs exactly one line with the run summary: INFO when it succeeded, ERROR when not.
    """
    started = time.monotonic()
    run: Exporter | None = None
    failure: Exception | None = None
    try:
        run = exporter()
    except Exception as exc:  # bad configuration or a client that cannot be built: still one summary line
        failure = exc
    published = message_time(event_time, data)
    age = ((now or datetime.now(UTC)) - published).total_seconds() if published else 0.0
    max_age = _max_age(run)
    if age > max_age:
        log.warning(
            "Dropping a tick published %s (%.0f s ago, over MAX_MESSAGE_AGE_SECONDS=%d) so that it stops being "
            "redelivered; the next scheduled tick exports from the cursor, so nothing is lost if that one succeeds",
            published, age, max_age,
            extra={"json_fields": {"dropped_tick": True, "message_age_seconds": round(age)}},
        )
        return None
    if run is None:
        summary = RunSummary(error=str(failure), duration_seconds=round(time.monotonic() - started, 3))
        log.error("Looker export failed: %s", failure, extra={"json_fields": {"summary": summary.as_dict()}})
        raise RuntimeError(f"Looker export failed: {failure}") from None
    try:
        summary = run.run()
    except ExportError as exc:
        log.error("Looker export failed: %s", exc, extra={"json_fields": {"summary": exc.summary.as_dict()}})
        raise RuntimeError(f"Looker export failed: {exc}") from None
    log.info("Looker export finished: %d events written", summary.events_written,
             extra={"json_fields": {"summary": summary.as_dict()}})
    return summary

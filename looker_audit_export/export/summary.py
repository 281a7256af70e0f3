"""What a run did, per stream and in all: the one structured line each run logs at its end.

Plain data; knows nothing of Looker, entries or Cloud Logging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StreamSummary:
    """What one run did for one stream."""

    read: int = 0
    written: int = 0
    held_back: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    newest_time: str | None = None
    lag_seconds: float | None = None
    caught_up: bool = False


@dataclass
class RunSummary:
    """What one run did; logged as one structured line at its end.

    The top-level counts cover every stream; ``cursor_*``, ``newest_event_time`` and ``lag_seconds``
    are the events stream's. ``lag_seconds`` is 0 when caught up, else how far behind the newest
    exported event is. ``entries_resent``: entries this run sent that may already have been stored, so
    Cloud Logging may hold them twice: those of a request sent again after an error that does not rule
    out that it was stored, and those up to the id an earlier run had sent when it last stored the cursor
    (``sent_through``). It cannot count what a killed run sent after its last cursor write (at most
    ``MAX_UNCOMMITTED_ENTRIES``). ``cursor_writes``: how many times the run stored the cursor.
    """

    events_read: int = 0
    events_written: int = 0
    entries_resent: int = 0
    rewritten_after_shrinking: int = 0
    placeholders: int = 0
    duplicate_rows: int = 0
    held_back_unsettled: int = 0
    query_calls: int = 0
    write_calls: int = 0
    bytes_sent: int = 0
    pages: int = 0
    cursor_writes: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    newest_event_time: str | None = None
    lag_seconds: float | None = None
    duration_seconds: float = 0.0
    caught_up: bool = False
    error: str | None = None
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    #: How System Activity showed time, as measured: ``zone``, ``measured_offset``, ``source``.
    time_reading: dict[str, str | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExportError(RuntimeError):
    """A run left events unwritten; the cursor stays before them so the next delivery retries."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary

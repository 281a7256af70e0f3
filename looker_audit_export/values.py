"""What a Looker value means: ids, times, text, users and events, as System Activity sends them.

Every other room uses these; this one knows nothing of Looker's API, of entries or of the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class LookerUser:
    """A Looker user as System Activity describes it."""

    id: int
    email: str | None = None
    name: str | None = None
    permissions: tuple[str, ...] = ()


@dataclass(slots=True)
class LookerEvent:
    """One ``event`` row, the raw Looker fields by name, and its attributes in id order."""

    row: Mapping[str, Any]
    attributes: Sequence[tuple[str, Any]] = ()


def whole_number(value: Any) -> int | None:
    """A Looker id as an int, or None when it is missing or not a whole number."""
    if type(value) is int:  # the common case, first
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def event_id(row: Mapping[str, Any]) -> int | None:
    """The numeric ``event.id`` of a row, or None when it is missing or not a whole number."""
    return whole_number(row.get("event.id"))


def parse_looker_time(value: Any) -> datetime | None:
    """Parse a Looker datetime (``YYYY-MM-DD HH:MM:SS`` in UTC, or ISO 8601 with an offset)."""
    if type(value) is str:
        return parse_time_text(value)  # rows of a page share seconds: cached
    if not isinstance(value, str):
        return None
    return parse_time_text.__wrapped__(value)


@lru_cache(maxsize=4096)
def parse_time_text(value: str) -> datetime | None:
    if not value.strip():
        return None
    text = value.strip().replace("/", "-")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def clean_text(value: str) -> str:
    """Make a string valid UTF-8 for protobuf: a lone surrogate becomes U+FFFD, a split pair is joined."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value

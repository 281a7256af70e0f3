"""The System Activity explores the export reads: one field list per explore, which of its fields the
export relies on and which it can do without, and the explores each stream reads.

Pure; knows nothing of the SDK, entries or the export.

An explore's real fields come from the metadata call ``lookml_model_explore("system__activity", explore,
fields="fields(dimensions(name),measures(name),filters(name),parameters(name))")``
(``GET /api/4.0/lookml_models/{model}/explores/{explore}``, looker_sdk
``Looker40SDK.lookml_model_explore``; each field's ``name`` is ``view.field``), which is not a query.
``permission_set.*`` is documented in the ``event_attribute`` and ``history`` explores
(https://cloud.google.com/looker/docs/system-activity-pages); whether the ``user`` explore joins it, and
whether ``user.created_time`` exists, is not documented, so the exporter asks the instance.

Required: what an entry cannot be right without: the id (the cursor), the time, what happened
(name, category, status, source), who did it (user id and email, and the sudo user behind an action),
and each attribute's owner, name and value. Optional: detail the mapping already treats as possibly
absent: display names, permissions, an API-call flag, the content and query a history row points to,
its runtime and message, and the ``user.created_time`` filter (it only makes the query text unique).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MODEL = "system__activity"
#: Every field the exporter names, per explore, selected or filtered on: the one list of each explore.
USED: Mapping[str, tuple[str, ...]] = {
    "event": ("event.id", "event.name", "event.category", "event.created_time", "event.user_id",
              "event.sudo_user_id", "event.is_api_call", "user.email", "user.name"),
    # each attribute's owner is its event.id (read by public code in this explore); event_attribute.event_id,
    # which no public source confirms, is not used
    "event_attribute": ("event_attribute.id", "event_attribute.name", "event_attribute.value", "event.id",
                        "event.created_time"),
    "user": ("user.id", "user.email", "user.name", "user.created_time", "permission_set.name",
             "permission_set.permissions"),
    "history": ("history.id", "history.created_time", "history.completed_time", "history.status",
                "history.source", "history.runtime", "history.result_source", "history.message",
                "history.dashboard_id", "history.look_id", "query.id", "query.model", "query.view", "user.id",
                "user.email", "user.name"),
}
#: Fields the export goes on without (each then left out of the query or its filters).
OPTIONAL: frozenset[str] = frozenset({
    "event.is_api_call", "user.name", "user.created_time", "permission_set.name", "permission_set.permissions",
    "history.runtime", "history.result_source", "history.message", "history.dashboard_id", "history.look_id",
    "query.id", "query.model", "query.view",
})
#: Fields the history stream can do without besides OPTIONAL (who ran a query is shown by its email).
OPTIONAL_IN: Mapping[str, frozenset[str]] = {"history": frozenset({"user.id"})}
#: Fields only filtered on, never selected (``event_attribute`` rows are filtered by their event's time).
FILTER_ONLY: Mapping[str, frozenset[str]] = {"event_attribute": frozenset({"event.created_time"}),
                                             "user": frozenset({"user.created_time"})}
#: The explores each stream reads.
STREAM_EXPLORES: Mapping[str, tuple[str, ...]] = {"events": ("event", "event_attribute", "user"),
                                                  "history": ("history",)}


@dataclass(frozen=True)
class FieldReport:
    """What one explore lacks of the fields the exporter uses."""

    explore: str
    missing_required: tuple[str, ...]
    missing_optional: tuple[str, ...]


def is_optional(explore: str, name: str) -> bool:
    return name in OPTIONAL or name in OPTIONAL_IN.get(explore, frozenset())


def report(explore: str, available: Iterable[str]) -> FieldReport:
    """Compare the fields the exporter uses in ``explore`` with those the instance has."""
    have = frozenset(available)
    missing = [name for name in USED[explore] if name not in have]
    return FieldReport(explore, tuple(name for name in missing if not is_optional(explore, name)),
                       tuple(name for name in missing if is_optional(explore, name)))


def refusal(found: FieldReport) -> str:
    """The error for required fields an instance lacks."""
    return (f"Looker's system__activity explore {found.explore!r} has no field "
            f"{', '.join(found.missing_required)}, which the export cannot be right without; update Looker, or "
            "check that the API user's role can see the whole System Activity model (see_system_activity)")


def warning(found: FieldReport) -> str:
    """The WARNING for optional fields an instance lacks."""
    return (f"Looker's system__activity explore {found.explore!r} has no field "
            f"{', '.join(found.missing_optional)}; exporting without them (those details stay empty)")


def selected(explore: str) -> tuple[str, ...]:
    """The fields a query of ``explore`` selects: those it uses, less the ones only filtered on."""
    return tuple(name for name in USED[explore] if name not in FILTER_ONLY.get(explore, ()))


EVENT_FIELDS = selected("event")
ATTRIBUTE_FIELDS = selected("event_attribute")
HISTORY_FIELDS = selected("history")
USER_FIELDS = selected("user")


@dataclass(frozen=True)
class Explore:
    """A System Activity explore read with a keyset on its id, and the stream it feeds."""

    view: str
    fields: tuple[str, ...]
    id_field: str
    time_field: str
    stream: str


EVENTS = Explore("event", EVENT_FIELDS, "event.id", "event.created_time", "events")
HISTORY = Explore("history", HISTORY_FIELDS, "history.id", "history.created_time", "history")

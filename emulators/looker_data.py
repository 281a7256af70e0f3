"""In-memory Looker System Activity data (events, event attributes, users, query history).

Events are kept column-wise (parallel ``array`` columns plus a CSR index of
attributes) so a million events fit in a few hundred MB and are generated in
seconds.  :class:`Event` objects are materialised only on request.  Query
history rows (the ``history`` explore) are column-wise too, in
:class:`QueryHistory`.
"""

from __future__ import annotations

import math
import random
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, chain, repeat

from looker_audit_export import catalogue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_ID = -1  # column sentinel for "no user" / "no sudo user" / "no dashboard" / "no look"
NO_TIME = -(2**63)  # column sentinel for "no completed time" (a running query)
#: The Looker user of the emulated API credentials (``GET /api/4.0/user``); not one of the synthetic users.
API_USER_ID = 500
#: The history sources the API user's own queries are given: "api" as the History docs list it, "api3" as a
#: public System Activity view reads the raw value (russlooker/custom_system_activity history.view.lkml).
API_QUERY_SOURCES = ("api", "api3")
_OWN_VIEWS = ("event", "event_attribute", "user", "history")

AttrSpec = Mapping[str, str | None] | Iterable[tuple[str, str | None]]
PermissionSets = tuple[tuple[str, tuple[str, ...]], ...]


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """Aware UTC datetime from microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class User:
    """A Looker user and the permission sets of its roles."""

    id: int
    email: str
    name: str
    permission_sets: PermissionSets = ()
    timezone: str | None = None
    created: datetime = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Event:
    """One System Activity event with its attributes ``(id, name, value)``."""

    id: int
    name: str
    category: str
    created: datetime
    user_id: int | None
    sudo_user_id: int | None
    is_api_call: bool
    attributes: list[tuple[int, str, str | None]] = field(default_factory=list)


#: The category the emulator gives a documented event whose category no Looker source gives (and an
#: event added without one): visibly none of Looker's, so that nothing comes to rely on it.
UNDOCUMENTED_CATEGORY = "undocumented"

# Synthetic event kinds: every documented event of ``looker_audit_export.catalogue`` (name, category,
# documented attributes, with its source there), a relative weight, and padding: attribute names that
# no source documents for that event, added after the documented ones only so that pages have a
# realistic size. Padding is inert: never ``status`` nor an attribute that names the event's subject
# (``entries.events.SUBJECT_ATTRIBUTES``), so no behaviour of the exporter rests on it (tests/test_catalogue.py).
_WEIGHTS_AND_PADDING: dict[str, tuple[int, tuple[str, ...]]] = {
    "login": (220, ("type", "ip", "email")),
    "login_failure": (25, ("email", "type", "ip", "message")),
    "inactivity_logout": (60, ("ip", "type", "email")),
    "enable_login_notification": (1, ("ip", "fields")),
    "disable_login_notification": (1, ("ip", "fields")),
    "set_login_notification_text": (1, ("message", "ip", "fields")),
    "remove_login_notification_text": (1, ("ip", "fields")),
    "scheduler_execute": (40, ("name", "destination", "format", "title")),
    "scheduler_deliver": (38, ("name", "destination", "format", "title", "external email")),
    "create_dashboard": (30, ("title", "name", "fields")),
    "accept_integration_hub_legal_agreement": (3, ()),
    "account_manually_unlocked": (1, ("ip",)),
    "acquire_cookieless_embed_session": (20, ("ip", "type", "key")),
    "activate_oauth_client_app_user": (4, ()),
    "add_external_email_to_scheduled_task": (2, ("title", "destination")),
    "add_group_group": (1, ("name",)),
    "add_group_user": (5, ("name", "email")),
    "user_permission_elevation": (3, ("fields", "message", "name", "ip")),
    "update_labs_feature": (1, ("ip", "name")),
    "rename_project_file": (2, ("name", "branch", "commit_sha", "message")),
}
# (name, category, attribute names: documented first, then padding; relative weight)
CATALOG: tuple[tuple[str, str, tuple[str, ...], int], ...] = tuple(
    (event.name, event.category or UNDOCUMENTED_CATEGORY, event.attributes + _WEIGHTS_AND_PADDING[event.name][1],
     _WEIGHTS_AND_PADDING[event.name][0])
    for event in catalogue.EVENTS
)

# Event names the emulator emits with no acting user (an assumption: no source says who they run as).
SYSTEM_EVENTS = frozenset({"scheduler_execute", "scheduler_deliver"})

_TITLES = (
    "Sales overview",
    "Ventes trimestrielles — été",
    "売上ダッシュボード 日本",
    "KPI 🚀 launch",
    "Ops / on-call",
    "Cohorts (weekly)",
    "Café revenue ☕",
    "Finance: P&L",
    'Quote "tests" and \\backslash',
    "Zürich traffic",
)
_PERMISSIONS_ADMIN = (
    "access_data",
    "see_lookml_dashboards",
    "see_looks",
    "see_user_dashboards",
    "explore",
    "create_table_calculations",
    "save_content",
    "create_public_looks",
    "download_with_limit",
    "download_without_limit",
    "schedule_look_emails",
    "schedule_external_look_emails",
    "create_alerts",
    "follow_alerts",
    "send_to_s3",
    "send_to_sftp",
    "send_outgoing_webhook",
    "send_to_integration",
    "see_sql",
    "see_lookml",
    "develop",
    "deploy",
    "support_access_toggle",
    "use_sql_runner",
    "clear_cache_refresh",
    "see_drill_overlay",
    "manage_spaces",
    "manage_homepage",
    "manage_models",
    "create_prefetches",
    "login_special_email",
    "embed_browse_spaces",
    "embed_save_shared_space",
    "see_system_activity",
    "see_users",
    "see_schedules",
    "sudo",
    "administer",
)
PERMISSION_SETS: dict[str, tuple[str, ...]] = {
    "Admin": _PERMISSIONS_ADMIN,
    "Developer": (
        "access_data",
        "see_looks",
        "see_user_dashboards",
        "explore",
        "save_content",
        "see_sql",
        "see_lookml",
        "develop",
        "deploy",
        "use_sql_runner",
    ),
    "Viewer": ("access_data", "see_looks", "see_user_dashboards", "download_with_limit"),
}
_FIRST = ("Ana", "Bruno", "Chloé", "Dmitri", "Émile", "Fatima", "Guo", "Hana", "Ivan", "Józef")
_LAST = (
    "Martin",
    "Silva",
    "Durand",
    "Ivanova",
    "Müller",
    "Haddad",
    "Wei",
    "山田",
    "Petrov",
    "Nowak",
)


def _value_pools() -> dict[str, tuple[str | None, ...]]:
    """Deterministic pools of realistic values for each attribute name."""
    hex_shas = tuple(f"{(i * 2654435761) % 16**10:010x}" for i in range(256))
    return {
        "type": ("email", "saml", "api3", "oidc", "google"),
        "ip": tuple(f"10.{i % 7}.{i % 251}.{(i * 7) % 253}" for i in range(300)),
        "email": (*(f"user{i}@exämple.com" for i in range(200)), None),
        "fields": ("email", "first_name,last_name", "locale", "home_folder_id"),
        "title": _TITLES,
        "name": (*_TITLES, "", "Ops team 👩‍💻"),
        "format": ("json", "csv", "xlsx", "txt", "json_detail"),
        "destination": ("email", "s3", "sftp", "webhook", "action_hub"),
        "branch": ("main", "dev-ana-1x2y", "feature/événements"),
        "commit_sha": hex_shas,
        "message": ("fix: typo", "Ajout du modèle été", "更新 views", "🚑 hotfix"),
        "key": tuple(f"k{i:04d}" for i in range(50)),
        "external email": ("partner@outside.example", "bob@vendor.example"),
        "app_client_guid": tuple(f"{(i * 2654435761) % 16**12:012x}" for i in range(40)),
        "app_display_name": ("Looker Studio", "VS Code extension", "Looker Explore Assistant 🤖", "Intégration BI"),
        "labs_feature_id": ("system_activity_model", "guided_analysis", "dashboards_next", "aggregate_awareness"),
        "labs_feature_value": ("true", "false"),
    }


_POOLS = _value_pools()
_ID_POOL = tuple(str(i) for i in range(1, 1024))

# ------------------------------------------------------------ query history
HISTORY_STATUSES = ("complete", "error", "killed", "cache_only_miss", "running")
HISTORY_RESULT_SOURCES = ("query", "cache", "datagroup")
_RUNNING = HISTORY_STATUSES.index("running")
_NO_RESULT = -1  # result_source column sentinel
# Query sources: documented values of ``history.source`` (``looker_audit_export.catalogue.HISTORY_SOURCES``,
# from its page), the relative weight of each in synthetic data and the content its rows refer to.
HISTORY_SOURCES: tuple[tuple[str, int, str], ...] = (
    ("dashboard", 40, "dashboard"),
    ("explore", 14, ""),
    ("api", 10, ""),
    ("suggest", 8, ""),
    ("look", 7, "look"),
    ("scheduled_task", 7, "dashboard|look"),
    ("sqlrunner", 3, ""),
    ("drill_modal", 3, "dashboard"),
    ("alerts", 2, "dashboard"),
    ("merge_query", 2, "dashboard"),
    ("private_embed", 2, "dashboard"),
    ("data-download-api", 2, "dashboard"),
    ("public_url", 1, "look"),
    ("render_manager_cache", 1, "dashboard"),
)
_RUN_AS_OWNER = frozenset({"scheduled_task", "alerts", "render_manager_cache"})
_CACHE_ONLY_SOURCES = frozenset({"dashboard", "private_embed", "public_url", "render_manager_cache"})
_QUERY_KINDS = (
    ("thelook", "orders"),
    ("thelook", "order_items"),
    ("thelook", "users"),
    ("thelook", "inventory_items"),
    ("sales", "opportunities"),
    ("sales", "accounts"),
    ("marketing_日本", "campaigns"),
    ("finance", "ledger"),
    ("system__activity", "history"),
    ("system__activity", "event"),
)
_ERROR_MESSAGES = (
    "Query execution failed: Syntax error: Unexpected keyword WHERE at [12:3]",
    "BigQuery: Resources exceeded during query execution: not enough memory for ORDER BY",
    "Query timed out after 3600 seconds",
    "Unknown column 'orders.région' in 'field list'",
    "PostgreSQL: permission denied for relation orders",
    "Snowflake: Warehouse 'REPORTING_WH' cannot be resumed because resource monitor has exceeded its quota",
    "Database connection 'thelook' failed: connection refused",
    "Erreur : division par zéro",
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of the ``history`` explore (one run of a query)."""

    id: int
    created: datetime
    completed: datetime | None
    status: str
    source: str
    runtime: float | None
    result_source: str | None
    message: str | None
    dashboard_id: int | None
    look_id: int | None
    query_id: int
    model: str
    view: str
    user_id: int | None


class QueryHistory:
    """Column store of query history rows, sorted by strictly increasing id.

    Missing values use sentinels: ``NO_ID`` (user, dashboard, look), ``NO_TIME``
    (completed), NaN (runtime), -1 (result source); messages are kept sparsely
    by row position.
    """

    def __init__(self) -> None:
        self.ids = array("q")
        self.created = array("q")  # microseconds since epoch, UTC
        self.completed = array("q")  # NO_TIME while running
        self.status = array("B")  # index into HISTORY_STATUSES
        self.source = array("H")  # index into self.sources
        self.runtime = array("d")  # seconds, NaN while running
        self.result_source = array("b")  # index into HISTORY_RESULT_SOURCES or -1
        self.messages: dict[int, str] = {}  # row position -> error message
        self.filters: dict[int, str] = {}  # row position -> the query's filters (query.formatted_filters)
        #: Users that exist in Looker though the data's user table leaves them out (the API user).
        self.account_ids: set[int] = set()
        self.dashboard_id = array("q")
        self.look_id = array("q")
        self.user_id = array("q")
        self.query_id = array("q")
        self.query_kind = array("H")  # index into self.query_kinds
        self.sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self.query_kinds: list[tuple[str, str]] = []  # (model, view)
        self._query_kind_index: dict[tuple[str, str], int] = {}
        self.created_sorted = True
        self.max_query_id = 0

    def __len__(self) -> int:
        return len(self.ids)

    def source_id(self, source: str) -> int:
        """Index of ``source`` in :attr:`sources` (added if new)."""
        index = self._source_index.get(source)
        if index is None:
            index = self._source_index[source] = len(self.sources)
            self.sources.append(source)
        return index

    def query_kind_id(self, model: str, view: str) -> int:
        """Index of ``(model, view)`` in :attr:`query_kinds` (added if new)."""
        key = (model, view)
        index = self._query_kind_index.get(key)
        if index is None:
            index = self._query_kind_index[key] = len(self.query_kinds)
            self.query_kinds.append(key)
        return index

    def position(self, history_id: int) -> int:
        """Row position of ``history_id``; KeyError if absent."""
        index = bisect_left(self.ids, history_id)
        if index == len(self.ids) or self.ids[index] != history_id:
            raise KeyError(history_id)
        return index

    def entry_at(self, index: int) -> HistoryEntry:
        """Materialise the row at position ``index``."""
        completed, runtime, result = self.completed[index], self.runtime[index], self.result_source[index]
        model, view = self.query_kinds[self.query_kind[index]]
        return HistoryEntry(
            self.ids[index],
            from_micros(self.created[index]),
            None if completed == NO_TIME else from_micros(completed),
            HISTORY_STATUSES[self.status[index]],
            self.sources[self.source[index]],
            None if math.isnan(runtime) else runtime,
            None if result == _NO_RESULT else HISTORY_RESULT_SOURCES[result],
            self.messages.get(index),
            _optional(self.dashboard_id[index]),
            _optional(self.look_id[index]),
            self.query_id[index],
            model,
            view,
            _optional(self.user_id[index]),
        )


def _optional(value: int) -> int | None:
    return None if value == NO_ID else value


def _finished(
    created: int,
    status: str,
    completed: datetime | None,
    runtime: float | None,
    result_source: str | None,
    message: str | None,
) -> tuple[int, float, int]:
    """Validated (completed micros, runtime, result source index) of a finished run."""
    if status not in HISTORY_STATUSES or status == "running":
        raise ValueError(f"status {status!r} is not one of {HISTORY_STATUSES[:-1]}")
    if (message is None) == (status == "error"):
        raise ValueError("an error needs a message and only an error has one")
    if result_source is not None and result_source not in HISTORY_RESULT_SOURCES:
        raise ValueError(f"result_source {result_source!r} is not one of {HISTORY_RESULT_SOURCES} or None")
    if runtime is not None and not (runtime >= 0 and math.isfinite(runtime)):
        raise ValueError(f"runtime must be a finite number of seconds >= 0, not {runtime!r}")
    if completed is None:
        runtime = 0.0 if runtime is None else float(runtime)
        done = created + round(runtime * 1_000_000)
    else:
        done = to_micros(completed)
        if runtime is None:
            runtime = (done - created) / 1_000_000
    if done < created:
        raise ValueError("a query cannot complete before it was created")
    result = _NO_RESULT if result_source is None else HISTORY_RESULT_SOURCES.index(result_source)
    return done, float(runtime), result


class SystemActivity:
    """Thread-safe store of events (sorted by strictly increasing id), users and query history."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.kinds: list[tuple[str, str]] = []  # (name, category)
        self._kind_index: dict[tuple[str, str], int] = {}
        self.attr_names: list[str] = []
        self._attr_name_index: dict[str, int] = {}
        # event columns
        self.ids = array("q")
        self.created = array("q")  # microseconds since epoch, UTC
        self.kind = array("H")
        self.user_id = array("q")
        self.sudo_user_id = array("q")
        self.is_api = array("b")
        self.attr_start = array("q", [0])  # CSR: attributes of event i are [start[i], start[i+1])
        # attribute columns
        self.attr_ids = array("q")
        self.attr_event = array("i")  # event index of each attribute
        self.attr_name = array("H")
        self.attr_values: list[str | None] = []
        self.created_sorted = True
        self._visible_max_id: int | None = None
        self._hidden_ids: set[int] = set()
        self.history = QueryHistory()

    def __len__(self) -> int:
        return len(self.ids)

    # ---------------------------------------------------------------- users
    def add_user(
        self,
        id: int,
        email: str,
        name: str,
        permission_sets: Mapping[str, Sequence[str]] | PermissionSets = (),
        timezone: str | None = None,
    ) -> User:
        """Add (or replace) a user."""
        sets = permission_sets.items() if isinstance(permission_sets, Mapping) else permission_sets
        user = User(id, email, name, tuple((n, tuple(p)) for n, p in sets), timezone)
        with self._lock:
            self.users[id] = user
        return user

    # --------------------------------------------------------------- events
    def _kind_id(self, name: str, category: str) -> int:
        key = (name, category)
        index = self._kind_index.get(key)
        if index is None:
            index = self._kind_index[key] = len(self.kinds)
            self.kinds.append(key)
        return index

    def _attr_name_id(self, name: str) -> int:
        index = self._attr_name_index.get(name)
        if index is None:
            index = self._attr_name_index[name] = len(self.attr_names)
            self.attr_names.append(name)
        return index

    def add_event(
        self,
        name: str,
        *,
        created: datetime,
        category: str | None = None,
        user_id: int | None = None,
        sudo_user_id: int | None = None,
        is_api_call: bool = False,
        attributes: AttrSpec = (),
        id: int | None = None,
        id_gap: int = 1,
    ) -> Event:
        """Append an event; ``id`` defaults to the last id plus ``id_gap``.

        ``category`` defaults to the documented category of ``name`` (``looker_audit_export.catalogue``),
        else to ``UNDOCUMENTED_CATEGORY``: Looker adds events, and the exporter passes any name through.
        """
        if category is None:
            documented = catalogue.BY_NAME.get(name)
            category = documented.category if documented and documented.category else UNDOCUMENTED_CATEGORY
        pairs = list(attributes.items() if isinstance(attributes, Mapping) else attributes)
        with self._lock:
            last = self.ids[-1] if self.ids else 0
            event_id = last + id_gap if id is None else id
            if event_id <= last:
                raise ValueError(f"event id {event_id} must exceed the last id {last}")
            micros = to_micros(created)
            if self.created and micros < self.created[-1]:
                self.created_sorted = False
            index = len(self.ids)
            first_attr = self.attr_ids[-1] + 1 if self.attr_ids else 1
            attrs = [(first_attr + k, n, v) for k, (n, v) in enumerate(pairs)]
            for attr_id, attr_name, value in attrs:
                self.attr_ids.append(attr_id)
                self.attr_event.append(index)
                self.attr_name.append(self._attr_name_id(attr_name))
                self.attr_values.append(value)
            self.attr_start.append(len(self.attr_ids))
            self.created.append(micros)
            self.kind.append(self._kind_id(name, category))
            self.user_id.append(NO_ID if user_id is None else user_id)
            self.sudo_user_id.append(NO_ID if sudo_user_id is None else sudo_user_id)
            self.is_api.append(is_api_call)
            self.ids.append(event_id)
        return Event(event_id, name, category, from_micros(micros), user_id, sudo_user_id, is_api_call, attrs)

    def event_at(self, index: int) -> Event:
        """Materialise the event stored at position ``index``."""
        name, category = self.kinds[self.kind[index]]
        uid, sudo = self.user_id[index], self.sudo_user_id[index]
        start, stop = self.attr_start[index], self.attr_start[index + 1]
        return Event(
            self.ids[index],
            name,
            category,
            from_micros(self.created[index]),
            None if uid == NO_ID else uid,
            None if sudo == NO_ID else sudo,
            bool(self.is_api[index]),
            [(self.attr_ids[j], self.attr_names[self.attr_name[j]], self.attr_values[j]) for j in range(start, stop)],
        )

    def events_after(self, event_id: int) -> Iterator[Event]:
        """Visible events with an id greater than ``event_id``, in id order."""
        start, stop = bisect_right(self.ids, event_id), self.visible_count()
        return (self.event_at(i) for i in range(start, stop) if self.is_visible(i))

    # ----------------------------------------------- Elite System Activity lag
    def hide_after(self, event_id: int) -> None:
        """Hide events with an id above ``event_id`` until :meth:`reveal_all`."""
        with self._lock:
            self._visible_max_id = event_id

    def hide_ids(self, event_ids: Iterable[int]) -> None:
        """Hide individual events (rows that will show up late, out of id order)."""
        with self._lock:
            self._hidden_ids.update(event_ids)

    def reveal_all(self) -> None:
        """Make every stored event visible."""
        with self._lock:
            self._visible_max_id = None
            self._hidden_ids.clear()

    def visible_count(self) -> int:
        """Number of leading event positions not cut off by :meth:`hide_after`."""
        with self._lock:
            if self._visible_max_id is None:
                return len(self.ids)
            return bisect_right(self.ids, self._visible_max_id)

    def is_visible(self, index: int) -> bool:
        """False if the event at ``index`` was hidden with :meth:`hide_ids`."""
        return not self._hidden_ids or self.ids[index] not in self._hidden_ids

    @property
    def has_hidden_ids(self) -> bool:
        """True while individual events are hidden."""
        return bool(self._hidden_ids)

    # -------------------------------------------------------- query history
    def add_history(
        self,
        *,
        created: datetime,
        source: str,
        status: str = "complete",
        user_id: int | None = None,
        runtime: float | None = None,
        completed: datetime | None = None,
        result_source: str | None = "query",
        message: str | None = None,
        dashboard_id: int | None = None,
        look_id: int | None = None,
        query_id: int | None = None,
        model: str = "thelook",
        view: str = "orders",
        id: int | None = None,
        id_gap: int = 1,
        filters: str | None = None,
    ) -> int:
        """Append a query history row and return its id (default: the last id plus ``id_gap``).

        A ``running`` row has no completed time, runtime, result source or
        message (``result_source`` is ignored; :meth:`complete_history` finishes
        it later).  A finished row's ``completed`` defaults to ``created +
        runtime`` and its ``runtime`` to ``completed - created`` (0 if neither is
        given).  ``message`` is required for ``error`` rows and refused for
        others.  ``query_id`` defaults to a new query (the largest so far plus 1).
        """
        if not source:
            raise ValueError("source must be a non-empty string")
        micros = to_micros(created)
        if status == "running":
            if completed is not None or runtime is not None or message is not None:
                raise ValueError("a running query has no completed time, runtime or message yet")
            done, seconds, result = NO_TIME, math.nan, _NO_RESULT
        else:
            done, seconds, result = _finished(micros, status, completed, runtime, result_source, message)
        h = self.history
        with self._lock:
            last = h.ids[-1] if h.ids else 0
            history_id = last + id_gap if id is None else id
            if history_id <= last:
                raise ValueError(f"history id {history_id} must exceed the last id {last}")
            query = h.max_query_id + 1 if query_id is None else query_id
            if h.created and micros < h.created[-1]:
                h.created_sorted = False
            if message is not None:
                h.messages[len(h.ids)] = message
            if filters is not None:
                h.filters[len(h.ids)] = filters
            h.created.append(micros)
            h.completed.append(done)
            h.status.append(HISTORY_STATUSES.index(status))
            h.source.append(h.source_id(source))
            h.runtime.append(seconds)
            h.result_source.append(result)
            h.dashboard_id.append(NO_ID if dashboard_id is None else dashboard_id)
            h.look_id.append(NO_ID if look_id is None else look_id)
            h.user_id.append(NO_ID if user_id is None else user_id)
            h.query_id.append(query)
            h.query_kind.append(h.query_kind_id(model, view))
            h.max_query_id = max(h.max_query_id, query)
            h.ids.append(history_id)
        return history_id

    def complete_history(
        self,
        history_id: int,
        *,
        status: str = "complete",
        completed: datetime,
        runtime: float,
        result_source: str | None = "query",
        message: str | None = None,
    ) -> None:
        """Finish a ``running`` history row (KeyError if absent, ValueError if already finished)."""
        h = self.history
        with self._lock:
            index = h.position(history_id)
            if h.status[index] != _RUNNING:
                raise ValueError(f"history row {history_id} is not running")
            done, seconds, result = _finished(h.created[index], status, completed, runtime, result_source, message)
            if message is not None:
                h.messages[index] = message
            h.completed[index] = done
            h.runtime[index] = seconds
            h.result_source[index] = result
            h.status[index] = HISTORY_STATUSES.index(status)

    def history_entry(self, history_id: int) -> HistoryEntry:
        """The history row ``history_id`` (KeyError if absent)."""
        with self._lock:
            return self.history.entry_at(self.history.position(history_id))

    def synthetic_history(self, n: int, *, end: datetime, span: timedelta, seed: int = 0,
                          api_user_id: int | None = None) -> None:
        """Append ``n`` deterministic, realistic history rows spread over ``span`` up to ``end``.

        Runs whose runtime reaches past ``end`` (and always the last three) are
        still ``running``; about 4% fail with an error message, a few are killed
        or miss a cache-only dashboard load; about a third of the completed runs
        come from the cache or a datagroup with tiny runtimes.  Dashboard and
        look ids follow the source; scheduled tasks, alerts and renders run as
        the content owner, public embeds as nobody, and 1 in 50 rows belongs to
        a deleted user (9999).  With ``api_user_id``, one row in eight is one of
        that API user's own System Activity queries instead (an exporter's).
        Requires history ids and times after any existing rows.
        """
        rng = random.Random(seed)
        h = self.history
        names = [name for name, _, _ in HISTORY_SOURCES]
        content = {name: kind for name, _, kind in HISTORY_SOURCES}
        sources = rng.choices(names, [w for _, w, _ in HISTORY_SOURCES], k=n)
        statuses = rng.choices(HISTORY_STATUSES[:4], (92.0, 4.0, 1.5, 2.5), k=n)
        start_s, span_s = to_micros(end - span) // 1_000_000, int(span.total_seconds())
        seconds = sorted(rng.choices(range(start_s, start_s + span_s + 1), k=n))
        end_us = to_micros(end)
        users = sorted(set(self.users) - {api_user_id}) or [1]
        ad_hoc_queries = max(50, n // 4)
        with self._lock:
            last = h.ids[-1] if h.ids else 0
            if h.created and seconds and seconds[0] * 1_000_000 < h.created[-1]:
                raise ValueError("synthetic history must start after the existing rows")
            first_query = h.max_query_id + 1
            kinds = [h.query_kind_id(m, v) for m, v in _QUERY_KINDS]
            own_sources = API_QUERY_SOURCES if api_user_id is not None else ()
            source_ids = {name: h.source_id(name) for name in (*names, *own_sources)}
            own_kinds = [h.query_kind_id("system__activity", view) for view in _OWN_VIEWS]
            for k in range(n):
                source, status = sources[k], statuses[k]
                if status == "cache_only_miss" and source not in _CACHE_ONLY_SOURCES:
                    status = "complete"
                dashboard = look = NO_ID
                refers = content[source]
                if refers == "dashboard|look":
                    refers = "dashboard" if rng.random() < 0.6 else "look"
                if refers == "dashboard":
                    dashboard = rng.randint(1, 120)
                    query = first_query + dashboard * 16 + rng.randrange(12)  # one of its tiles
                elif refers == "look":
                    look = rng.randint(1, 300)
                    query = first_query + 2000 + look
                else:
                    query = first_query + 2400 + rng.randrange(ad_hoc_queries)
                if source == "public_url":
                    user = NO_ID
                elif source in _RUN_AS_OWNER:
                    user = users[(dashboard if dashboard != NO_ID else look) % len(users)]
                else:
                    user = 9999 if rng.random() < 0.02 else rng.choice(users)
                kind = kinds[(query * 2_654_435_761) % len(kinds)]
                if api_user_id is not None and k % 8 == 3:  # the exporter's own query: no content, its own user
                    source, user, kind = API_QUERY_SOURCES[k // 8 % 2], api_user_id, own_kinds[k // 16 % 4]
                    dashboard = look = NO_ID
                    query = first_query + 2400 + ad_hoc_queries + k // 16 % 4
                    status = "complete" if status == "cache_only_miss" else status
                result = _NO_RESULT
                if status == "complete":
                    result = rng.choices((0, 1, 2), (60, 35, 5))[0]
                    runtime = rng.lognormvariate(0.0, 1.3) if result == 0 else rng.uniform(0.001, 0.08)
                elif status == "error":
                    result, runtime = 0, rng.lognormvariate(0.5, 1.5)
                elif status == "killed":
                    result, runtime = 0, rng.uniform(5.0, 900.0)
                else:  # cache_only_miss
                    runtime = rng.uniform(0.001, 0.03)
                runtime = min(round(max(runtime, 0.001), 3), 3600.0)
                created = seconds[k] * 1_000_000
                done = created + round(runtime * 1_000_000)
                if done > end_us or k >= n - 3:
                    status, done, runtime, result = "running", NO_TIME, math.nan, _NO_RESULT
                elif status == "error":
                    h.messages[len(h.ids)] = _ERROR_MESSAGES[rng.randrange(len(_ERROR_MESSAGES))]
                last += rng.choice((1, 1, 1, 1, 1, 2, 3, 9))
                h.ids.append(last)
                h.created.append(created)
                h.completed.append(done)
                h.status.append(HISTORY_STATUSES.index(status))
                h.source.append(source_ids[source])
                h.runtime.append(runtime)
                h.result_source.append(result)
                h.dashboard_id.append(dashboard)
                h.look_id.append(look)
                h.user_id.append(user)
                h.query_id.append(query)
                h.query_kind.append(kind)
                h.max_query_id = max(h.max_query_id, query)

    # ------------------------------------------------------------ synthetic
    @classmethod
    def synthetic(
        cls,
        n_events: int,
        *,
        end: datetime,
        span: timedelta,
        seed: int = 0,
        attrs_per_event: float = 3.0,
        n_users: int = 50,
        n_history: int = 0,
        api_user_id: int | None = None,
    ) -> SystemActivity:
        """Deterministic, realistic data: ``n_events`` events spread over ``span`` up to ``end``.

        ``n_history`` query history rows over the same span are added with
        :meth:`synthetic_history`.

        With ``api_user_id`` (an exporter's API user, added to the users), one
        ``login`` in ten is that user's (an API login), and its own System
        Activity queries show in the query history.

        Attribute counts are scaled from each event type's documented attributes,
        so the achievable average is capped by the catalogue (about 3.1); event
        types without attributes always have none.
        """
        rng = random.Random(seed)
        data = cls()
        data._add_synthetic_users(rng, n_users)
        weights = [w for *_, w in CATALOG]
        natural = sum(len(a) * w for (_, _, a, w) in CATALOG) / sum(weights)
        scale = min(1.0, attrs_per_event / natural)
        # variants: (kind, attribute name ids, is system event) with stochastic rounding
        variants: list[tuple[int, tuple[int, ...], bool]] = []
        variant_weights: list[float] = []
        for name, category, attrs, weight in CATALOG:
            kind = data._kind_id(name, category)
            names = tuple(data._attr_name_id(a) for a in attrs)
            low, frac = divmod(len(attrs) * scale, 1.0)
            for take, share in ((int(low), 1.0 - frac), (int(low) + 1, frac)):
                if share > 0 and take <= len(names):
                    variants.append((kind, names[:take], name in SYSTEM_EVENTS))
                    variant_weights.append(weight * share)
        picks = [variants[v] for v in rng.choices(range(len(variants)), variant_weights, k=n_events)]
        gaps = rng.choices((1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 17), k=n_events)
        start_s, span_s = to_micros(end - span) // 1_000_000, int(span.total_seconds())
        # whole seconds, as in Looker's database: several events often share a second
        seconds = sorted(rng.choices(range(start_s, start_s + span_s + 1), k=n_events))
        user_ids = [*data.users, 9999]  # 9999: a deleted user (nulls in user.*)
        actors = rng.choices(user_ids, [10] * (len(user_ids) - 1) + [1], k=n_events)
        actors = [NO_ID if v[2] else a for v, a in zip(picks, actors, strict=True)]
        rolls = [rng.random() for _ in range(n_events)]
        prefixes = [v[1] for v in picks]
        takes = [len(p) for p in prefixes]

        data.ids = array("q", accumulate(gaps, initial=1000))[1:]
        data.created = array("q", (s * 1_000_000 for s in seconds))
        data.kind = array("H", (v[0] for v in picks))
        data.user_id = array("q", actors)
        data.sudo_user_id = array("q", (1 if r > 0.99 and a > 1 else NO_ID for r, a in zip(rolls, actors, strict=True)))
        data.is_api = array("b", (r < 0.3 for r in rolls))
        data.attr_start = array("q", accumulate(takes, initial=0))
        data.attr_name = array("H", chain.from_iterable(prefixes))
        data.attr_event = array("i", chain.from_iterable(map(repeat, range(n_events), takes)))
        pools = [_POOLS.get(a, _ID_POOL) for a in data.attr_names]
        lengths = [len(pool) for pool in pools]
        data.attr_values = [
            pools[n][(i * 7919 + n * 104_729) % lengths[n]] for i, prefix in enumerate(prefixes) for n in prefix
        ]
        data.attr_ids = array("q", range(1, len(data.attr_values) + 1))
        if api_user_id is not None:
            data._add_api_user(api_user_id)
        if n_history:
            data.synthetic_history(n_history, end=end, span=span, seed=seed, api_user_id=api_user_id)
        return data

    def _add_api_user(self, api_user_id: int) -> None:
        """Add the exporter's API user, and make one ``login`` event in ten its own API login."""
        self.add_user(api_user_id, "looker-audit-export@api.example.com", "Audit Exporter",
                      (("System Activity", ("see_system_activity",)),))
        logins = {index for index, (name, _) in enumerate(self.kinds) if name == "login"}
        seen = 0
        for i, kind in enumerate(self.kind):
            if kind in logins:
                if seen % 10 == 0:
                    self.user_id[i], self.sudo_user_id[i], self.is_api[i] = api_user_id, NO_ID, True
                seen += 1

    def _add_synthetic_users(self, rng: random.Random, n_users: int) -> None:
        sets = list(PERMISSION_SETS.items())
        zones = (None, "Europe/Paris", "Asia/Tokyo", "America/New_York")
        for uid in range(1, n_users + 1):
            first, last = _FIRST[uid % len(_FIRST)], _LAST[(uid // len(_FIRST)) % len(_LAST)]
            chosen = [sets[0]] if uid <= 3 else rng.sample(sets[1:], rng.randint(1, 2))
            self.add_user(
                uid,
                f"{first.lower()}.{uid}@example.com",
                f"{first} {last}",
                tuple(chosen),
                zones[uid % len(zones)],
            )

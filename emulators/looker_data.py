"""In-memory Looker System Activity data (events, event attributes, users).

Events are kept column-wise (parallel ``array`` columns plus a CSR index of
attributes) so a million events fit in a few hundred MB and are generated in
seconds.  :class:`Event` objects are materialised only on request.
"""

from __future__ import annotations

import random
import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, chain, repeat

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_ID = -1  # column sentinel for "no user" / "no sudo user"

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


# (name, category, attribute names in decreasing importance, relative weight)
# Names, categories and attributes follow https://cloud.google.com/looker/docs/events
CATALOG: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("login", "user", ("type", "ip", "status"), 220),
    ("login_failure", "user", ("email", "type", "ip", "status"), 25),
    ("logout", "user", ("ip",), 60),
    ("sudo_login", "user", ("sudo_user_id", "user_id"), 3),
    ("account_manually_unlocked", "user", ("user_id", "key"), 1),
    ("create_user", "user", ("user_id", "email"), 4),
    ("update_user", "user", ("user_id", "email", "fields"), 8),
    ("delete_user", "user", ("user_id",), 1),
    ("create_api3_key", "user", ("user_id", "client_id"), 2),
    ("update_user_attribute", "user_attribute", ("user_attribute_id", "name"), 2),
    ("create_role", "role", ("role_id", "name", "permission_set_id", "model_set_id"), 2),
    ("update_role", "role", ("role_id", "name"), 3),
    ("delete_role", "role", ("role_id",), 1),
    ("create_permission_set", "permission_set", ("permission_set_id", "name", "permissions"), 1),
    ("update_permission_set", "permission_set", ("permission_set_id", "name", "permissions"), 2),
    ("add_group_user", "group", ("group_id", "user_id"), 5),
    ("create_dashboard", "dashboard", ("dashboard_id", "title", "folder_id"), 30),
    ("update_dashboard", "dashboard", ("dashboard_id", "title", "folder_id"), 70),
    ("delete_dashboard", "dashboard", ("dashboard_id",), 8),
    ("create_look", "look", ("look_id", "title", "query_id", "folder_id"), 20),
    ("update_look", "look", ("look_id", "title", "query_id"), 35),
    ("delete_look", "look", ("look_id",), 5),
    ("create_folder", "folder", ("folder_id", "name", "parent_id"), 6),
    ("export_query", "query", ("query_id", "format", "row_count", "status", "source"), 120),
    ("create_scheduled_plan", "scheduled_plan", ("scheduled_plan_id", "name", "destination"), 6),
    (
        "run_scheduled_plan",
        "scheduled_plan",
        ("scheduled_plan_id", "status", "destination", "row_count"),
        40,
    ),
    (
        "add_external_email_to_scheduled_task",
        "scheduled_plan",
        ("scheduled_task_id", "external email"),
        2,
    ),
    ("git_commit", "git", ("project_id", "branch", "commit_sha", "message"), 10),
    ("deploy_to_production", "lookml", ("project_id", "commit_sha"), 4),
    ("accept_integration_hub_legal_agreement", "integration", (), 3),
)

# Event names usually emitted by Looker itself, with no acting user.
SYSTEM_EVENTS = frozenset({"run_scheduled_plan", "deploy_to_production"})

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
        "status": ("success",) * 7 + ("failure", "error", "success"),
        "type": ("email", "saml", "api3", "oidc", "google"),
        "ip": tuple(f"10.{i % 7}.{i % 251}.{(i * 7) % 253}" for i in range(300)),
        "email": (*(f"user{i}@exämple.com" for i in range(200)), None),
        "fields": ("email", "first_name,last_name", "locale", "home_folder_id"),
        "title": _TITLES,
        "name": (*_TITLES, "", "Ops team 👩‍💻"),
        "format": ("json", "csv", "xlsx", "txt", "json_detail"),
        "source": ("explore", "dashboard", "look", "api"),
        "destination": ("email", "s3", "sftp", "webhook", "action_hub"),
        "permissions": tuple(",".join(p) for p in PERMISSION_SETS.values()),
        "branch": ("main", "dev-ana-1x2y", "feature/événements"),
        "commit_sha": hex_shas,
        "message": ("fix: typo", "Ajout du modèle été", "更新 views", "🚑 hotfix"),
        "key": tuple(f"k{i:04d}" for i in range(50)),
        "client_id": tuple(f"cl{i:06x}" for i in range(60)),
        "project_id": ("system__activity", "sales", "marketing_日本"),
        "external email": ("partner@outside.example", "bob@vendor.example"),
        "row_count": tuple(str(i * 37 % 50_000) for i in range(997)),
        "sudo_user_id": ("1", "2"),
    }


_POOLS = _value_pools()
_ID_POOL = tuple(str(i) for i in range(1, 1024))


class SystemActivity:
    """Thread-safe store of events (sorted by strictly increasing id) and users."""

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

        ``category`` defaults to the documented category of ``name``.
        """
        if category is None:
            category = next((c for n, c, _, _ in CATALOG if n == name), None)
            if category is None:
                raise ValueError(f"unknown event name {name!r}: pass category=")
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
    ) -> SystemActivity:
        """Deterministic, realistic data: ``n_events`` events spread over ``span`` up to ``end``.

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
        return data

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

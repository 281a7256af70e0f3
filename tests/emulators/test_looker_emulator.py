"""The Looker emulator, exercised over HTTP with the real ``looker_sdk``."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from looker_client import CLIENT_ID, CLIENT_SECRET, T0, FakeClock, run, sdk_for
from looker_sdk import error as sdk_error
from looker_sdk import models40

from emulators.looker import LookerEmulator
from emulators.looker_data import API_USER_ID, SystemActivity


def small_data() -> SystemActivity:
    """A handful of hand-made events around 2024-03-10 (US DST starts that day at 10:00 UTC)."""
    data = SystemActivity()
    data.add_user(1, "ana@example.com", "Ana Éclair", {"Admin": ("see_system_activity", "sudo")})
    data.add_user(2, "kenji@example.com", "山田 健二", {"Viewer": ("see_looks",)})
    data.add_event(
        "login",
        created=T0 - timedelta(hours=3),
        user_id=1,
        id=10,
        attributes={"type": "email", "status": "success"},
    )
    data.add_event("accept_integration_hub_legal_agreement", created=T0 - timedelta(hours=2), user_id=2, id=13)
    data.add_event(
        "update_dashboard",
        created=T0 - timedelta(hours=1),
        user_id=2,
        sudo_user_id=1,
        id=20,
        attributes=[("dashboard_id", "7"), ("title", "Ventes 日本 🚀")],
    )
    data.add_event(
        "run_scheduled_plan",
        created=T0,
        is_api_call=True,
        id=21,
        attributes={"scheduled_plan_id": "3", "status": "failure"},
    )
    data.add_event("logout", created=T0 + timedelta(minutes=1, seconds=30), user_id=77, id=30)
    return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=2))


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[LookerEmulator]:
    with LookerEmulator(small_data(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock) as emu:
        yield emu


@pytest.fixture(scope="module")
def big() -> Iterator[LookerEmulator]:
    data = SystemActivity.synthetic(12_345, end=T0, span=timedelta(days=3), seed=7)
    with LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emu:
        yield emu


def test_login_and_wrong_secret_answer_like_looker(emulator: LookerEmulator) -> None:
    assert run(sdk_for(emulator.base_url), "event", ["event.id"], sorts=["event.id"], limit="1") == [{"event.id": 10}]
    with pytest.raises(sdk_error.SDKError, match="Not found"):
        run(sdk_for(emulator.base_url, "wrong"), "event", ["event.id"])
    raw = requests.post(
        f"{emulator.base_url}/api/4.0/login",
        data={"client_id": CLIENT_ID, "client_secret": "wrong"},
        timeout=5,
    )
    assert raw.status_code == 404
    assert raw.json() == {
        "message": "Not found",
        "documentation_url": "https://cloud.google.com/looker/docs/",
    }
    by_params = requests.post(
        f"{emulator.base_url}/api/4.0/login",
        params={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=5,
    )
    assert by_params.json()["token_type"] == "Bearer"
    assert by_params.json()["expires_in"] == 3600
    assert emulator.stats()["logins"] == 2


def test_authentication_is_required_and_tokens_expire(emulator: LookerEmulator, clock: FakeClock) -> None:
    url = f"{emulator.base_url}/api/4.0/queries/run/json"
    body = {"model": "system__activity", "view": "event", "fields": ["event.id"]}
    anonymous = requests.post(url, json=body, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["message"] == "Requires authentication."
    token = requests.post(
        f"{emulator.base_url}/api/4.0/login",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=5,
    ).json()["access_token"]
    for scheme in ("Bearer", "token"):
        ok = requests.post(url, json=body, headers={"Authorization": f"{scheme} {token}"}, timeout=5)
        assert ok.status_code == 200
    clock.now += timedelta(seconds=3600)
    expired = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert expired.status_code == 401


def test_logout_invalidates_the_token(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    run(sdk, "event", ["event.id"])
    token = sdk.auth.token.access_token
    sdk.auth.logout()
    again = requests.post(
        f"{emulator.base_url}/api/4.0/queries/run/json",
        json={"model": "system__activity", "view": "event", "fields": ["event.id"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert again.status_code == 401


def test_default_limit_is_5000_and_minus_one_is_unlimited(big: LookerEmulator) -> None:
    sdk = sdk_for(big.base_url)
    assert len(run(sdk, "event", ["event.id"])) == 5000
    assert len(run(sdk, "event", ["event.id"], limit="")) == 5000
    assert len(run(sdk, "event", ["event.id"], limit="-1")) == 12_345
    assert len(run(sdk, "event", ["event.id"], limit="7")) == 7
    body = models40.WriteQuery(model="system__activity", view="event", fields=["event.id"])
    assert len(json.loads(sdk.run_inline_query("json", body, limit=6000))) == 6000


def test_keyset_paging_by_event_id_sees_every_event_once(big: LookerEmulator) -> None:
    sdk, last, seen = sdk_for(big.base_url), 0, []
    while page := run(
        sdk,
        "event",
        ["event.id", "event.name"],
        filters={"event.id": f">{last}"},
        sorts=["event.id"],
        limit="5000",
    ):
        seen += [row["event.id"] for row in page]
        last = page[-1]["event.id"]
    assert seen == sorted(set(seen)) and len(seen) == 12_345
    assert any(b - a > 1 for a, b in itertools.pairwise(seen))  # ids have gaps


def test_default_sort_is_newest_first_on_the_time_field(emulator: LookerEmulator) -> None:
    rows = run(sdk_for(emulator.base_url), "event", ["event.id", "event.created_time"])
    assert [r["event.id"] for r in rows] == [30, 21, 20, 13, 10]
    rows = run(sdk_for(emulator.base_url), "event", ["event.name", "event.id"])
    assert rows[0]["event.name"] == "accept_integration_hub_legal_agreement"


def test_time_filters_in_utc(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)

    def ids(expr: str) -> list[int]:
        rows = run(
            sdk,
            "event",
            ["event.id", "event.created_time"],
            query_timezone="UTC",
            filters={"event.created_time": expr},
            sorts=["event.id"],
        )
        return [r["event.id"] for r in rows]

    assert ids("2024-03-10 10:00:00 to 2024-03-10 12:00:00") == [13, 20]  # end exclusive
    assert ids("after 2024-03-10 11:00:00") == [20, 21, 30]  # inclusive
    assert ids("before 2024-03-10 11:00:00") == [10, 13]  # exclusive
    assert ids("2024/03/10") == [10, 13, 20, 21, 30]
    assert ids("2024-03-09") == []
    rows = run(
        sdk,
        "event",
        ["event.created_time", "event.created_date"],
        query_timezone="UTC",
        filters={"event.id": "21"},
    )
    assert rows == [{"event.created_time": "2024-03-10 12:00:00", "event.created_date": "2024-03-10"}]


def test_time_filters_and_results_follow_the_user_time_zone(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)  # API user zone: America/Los_Angeles (PDT, UTC-7, since 10:00 UTC)
    rows = run(
        sdk,
        "event",
        ["event.id", "event.created_time"],
        sorts=["event.id"],
        filters={"event.created_time": "2024-03-10 03:00:00 to 2024-03-10 05:00:00"},
    )
    assert rows == [
        {"event.id": 13, "event.created_time": "2024-03-10 03:00:00"},
        {"event.id": 20, "event.created_time": "2024-03-10 04:00:00"},
    ]
    tokyo = run(
        sdk,
        "event",
        ["event.created_time"],
        query_timezone="Asia/Tokyo",
        filters={"event.id": "10"},
    )
    assert tokyo == [{"event.created_time": "2024-03-10 18:00:00"}]
    # 01:00 PST is before the DST switch: 09:00 UTC
    assert run(sdk, "event", ["event.id"], filters={"event.created_time": "2024-03-10 01:00:00"}) == [{"event.id": 10}]


def test_relative_filters_are_minute_aligned_and_include_now(emulator: LookerEmulator, clock: FakeClock) -> None:
    sdk = sdk_for(emulator.base_url)
    clock.now = T0 + timedelta(minutes=2, seconds=5)  # 12:02:05 UTC

    def ids(expr: str) -> list[int]:
        rows = run(sdk, "event", ["event.id"], filters={"event.created_time": expr}, sorts=["event.id"])
        return [r["event.id"] for r in rows]

    assert ids("2 minutes") == [30]  # 12:01:00 .. now: 12:01:30 in, 12:00:00 out
    assert ids("3 minutes") == [21, 30]
    assert ids("1 hour") == [21, 30]
    assert ids("2 hours") == [20, 21, 30]
    assert ids("today") == [10, 13, 20, 21, 30]  # still 2024-03-10 in Los Angeles
    assert ids("3 hours ago") == [10]


def test_identical_queries_are_served_from_cache_even_with_cache_false(
    emulator: LookerEmulator, clock: FakeClock
) -> None:
    sdk = sdk_for(emulator.base_url)
    first = run(sdk, "event", ["event.id"], sorts=["event.id"], cache=False)
    emulator.data.add_event("logout", created=T0 + timedelta(minutes=2), user_id=1)
    assert run(sdk, "event", ["event.id"], sorts=["event.id"], cache=False) == first
    assert emulator.stats()["cache_hits"] == 1
    assert len(run(sdk, "event", ["event.id"], sorts=["event.id desc"])) == 6  # other query
    clock.now += timedelta(minutes=59)
    assert run(sdk, "event", ["event.id"], sorts=["event.id"], cache=False) == first
    clock.now += timedelta(minutes=1)  # event explore: 1 hour (the emulator's token expired too)
    assert len(run(sdk_for(emulator.base_url), "event", ["event.id"], sorts=["event.id"], cache=False)) == 6


def test_events_without_attributes_are_absent_from_event_attribute(
    emulator: LookerEmulator,
) -> None:
    rows = run(
        sdk_for(emulator.base_url),
        "event_attribute",
        ["event.id", "event.name", "event_attribute.name", "event_attribute.value"],
        sorts=["event.id", "event_attribute.id"],
    )
    assert {r["event.id"] for r in rows} == {10, 20, 21}
    assert {
        "event.id": 20,
        "event.name": "update_dashboard",
        "event_attribute.name": "title",
        "event_attribute.value": "Ventes 日本 🚀",
    } in rows


def test_joined_user_fields_and_user_explore(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    rows = run(
        sdk,
        "event",
        [
            "event.id",
            "event.user_id",
            "event.sudo_user_id",
            "event.is_api_call",
            "user.email",
            "user.name",
        ],
        sorts=["event.id"],
    )
    assert rows[2] == {
        "event.id": 20,
        "event.user_id": 2,
        "event.sudo_user_id": 1,
        "event.is_api_call": "No",
        "user.email": "kenji@example.com",
        "user.name": "山田 健二",
    }
    assert rows[3]["event.user_id"] is None and rows[3]["event.is_api_call"] == "Yes"
    assert rows[4]["event.user_id"] == 77 and rows[4]["user.email"] is None  # deleted user
    users = run(
        sdk,
        "user",
        ["user.id", "permission_set.name", "permission_set.permissions"],
        sorts=["user.id"],
    )
    assert users == [
        {
            "user.id": 1,
            "permission_set.name": "Admin",
            "permission_set.permissions": "see_system_activity,sudo",
        },
        {"user.id": 2, "permission_set.name": "Viewer", "permission_set.permissions": "see_looks"},
    ]


@pytest.mark.parametrize(
    ("field", "expr", "expected"),
    [
        ("event.id", "20", [20]),
        ("event.id", "10,21,99", [10, 21]),
        ("event.id", ">20", [21, 30]),
        ("event.id", ">=20 AND <30", [20, 21]),
        ("event.id", "[13,21)", [13, 20]),
        ("event.id", "(13,21]", [20, 21]),
        ("event.id", "NOT 20", [10, 13, 21, 30]),
        ("event.id", "13 to 20", [13, 20]),
        ("event.sudo_user_id", "NULL", [10, 13, 21, 30]),
        ("event.sudo_user_id", "NOT NULL", [20]),
        ("event.name", "login,logout", [10, 30]),
        ("event.name", "-login", [13, 20, 21, 30]),
        ("event.name", "%dash%", [20]),
        ("event.name", "log%,-logout", [10]),
        ("event.is_api_call", "Yes", [21]),
        ("user.email", "%@example.com", [10, 13, 20]),
    ],
)
def test_filter_expressions(emulator: LookerEmulator, field: str, expr: str, expected: list[int]) -> None:
    rows = run(sdk_for(emulator.base_url), "event", ["event.id"], filters={field: expr}, sorts=["event.id"])
    assert [r["event.id"] for r in rows] == expected


@pytest.mark.parametrize(
    ("view", "fields", "filters", "status"),
    [
        ("event", ["event.nope"], {}, 400),
        ("event", ["event.id"], {"event.id": ">> 5"}, 400),
        ("event", ["event.id"], {"event.created_time": "last tuesday-ish"}, 400),
        ("event", ["event.id"], {"event.bogus": "1"}, 400),
        ("event", ["event_attribute.name"], {}, 400),
        ("scheduled_plan_nope", ["history.id"], {}, 404),
    ],
)
def test_invalid_queries_are_rejected(
    emulator: LookerEmulator, view: str, fields: list[str], filters: dict[str, str], status: int
) -> None:
    token = requests.post(
        f"{emulator.base_url}/api/4.0/login",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=5,
    ).json()["access_token"]
    answer = requests.post(
        f"{emulator.base_url}/api/4.0/queries/run/json",
        json={"model": "system__activity", "view": view, "fields": fields, "filters": filters},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == status
    assert answer.json()["message"]
    with pytest.raises(sdk_error.SDKError):
        run(sdk_for(emulator.base_url), view, fields, filters=filters)


def test_create_query_then_run_query(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    query = sdk.create_query(
        models40.WriteQuery(
            model="system__activity",
            view="event",
            fields=["event.id"],
            filters={"event.id": ">13"},
            sorts=["event.id"],
            limit="2",
        )
    )
    assert query.id and query.view == "event" and query.limit == "2"
    assert json.loads(sdk.run_query(query.id, "json")) == [{"event.id": 20}, {"event.id": 21}]
    assert len(json.loads(sdk.run_query(query.id, "json", limit=10))) == 3
    with pytest.raises(sdk_error.SDKError):
        sdk.run_query("999999", "json")
    assert emulator.stats()["query_calls"] == 2


def test_fault_injection(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)

    def query(client: Any) -> list[dict[str, Any]]:
        return run(client, "event", ["event.id"], sorts=["event.id"])

    emulator.inject(503, times=2)
    for _ in range(2):
        with pytest.raises(sdk_error.SDKError, match="Service Unavailable"):
            query(sdk)
    assert len(query(sdk)) == 5
    emulator.inject("not_json")
    with pytest.raises(json.JSONDecodeError):
        query(sdk)
    emulator.inject("truncate")
    with pytest.raises(sdk_error.SDKError):
        query(sdk)
    emulator.inject("expire_tokens")
    with pytest.raises(sdk_error.SDKError, match="Requires authentication"):
        query(sdk)
    emulator.inject("slow:0.3")
    started = time.perf_counter()
    query(sdk_for(emulator.base_url))
    assert time.perf_counter() - started >= 0.3
    emulator.inject(429, path_contains="/login")
    limited = requests.post(f"{emulator.base_url}/api/4.0/login", timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    with pytest.raises(ValueError):
        emulator.inject("explode")


def test_late_rows_and_emulator_endpoints(emulator: LookerEmulator) -> None:
    emulator.data.hide_after(20)
    emulator.data.hide_ids([13])
    sdk = sdk_for(emulator.base_url)
    assert [r["event.id"] for r in run(sdk, "event", ["event.id"], sorts=["event.id"])] == [10, 20]
    emulator.data.reveal_all()
    emulator.clear_cache()
    assert len(run(sdk, "event", ["event.id"], sorts=["event.id"])) == 5
    stats = requests.get(f"{emulator.base_url}/_emulator/stats", timeout=5).json()
    assert stats == {"logins": 1, "query_calls": 2, "rows_returned": 7, "cache_hits": 0}
    assert requests.get(f"{emulator.base_url}/_emulator/healthz", timeout=5).ok


def test_synthetic_data_is_realistic_and_deterministic() -> None:
    data = SystemActivity.synthetic(20_000, end=T0, span=timedelta(days=1), seed=3)
    again = SystemActivity.synthetic(20_000, end=T0, span=timedelta(days=1), seed=3)
    assert data.ids == again.ids and data.attr_values == again.attr_values
    events = list(data.events_after(0))
    assert len(events) == len(data) == 20_000
    assert all(a.id < b.id and a.created <= b.created for a, b in itertools.pairwise(events))
    assert T0 - timedelta(days=1) <= events[0].created and events[-1].created <= T0
    assert 2.8 < sum(len(e.attributes) for e in events) / len(events) < 3.2
    names = {e.name for e in events}
    assert {
        "login",
        "login_failure",
        "create_dashboard",
        "user_permission_elevation",
        "accept_integration_hub_legal_agreement",
    } <= names
    assert {e.category for e in events if e.name.startswith("login")} == {"authentication"}
    assert any(e.sudo_user_id for e in events) and any(e.user_id is None for e in events)
    assert all(not e.attributes for e in events if e.name == "accept_integration_hub_legal_agreement")
    assert not any(n == "status" for e in events for _, n, _ in e.attributes)  # documented for no event
    assert any(v and not v.isascii() for e in events for _, _, v in e.attributes)
    assert len(data.users) == 50


def test_million_events_keyset_page_latency() -> None:
    started = time.perf_counter()
    data = SystemActivity.synthetic(1_000_000, end=T0, span=timedelta(days=30))
    generated = time.perf_counter() - started
    with LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emu:
        sdk = sdk_for(emu.base_url)
        middle = data.ids[500_000]
        timings = {}
        for view, fields in (
            ("event", ["event.id", "event.name", "event.created_time", "user.email"]),
            (
                "event_attribute",
                ["event.id", "event_attribute.id", "event_attribute.name", "event_attribute.value"],
            ),
        ):
            started = time.perf_counter()
            rows = run(
                sdk,
                view,
                fields,
                filters={"event.id": f">{middle}"},
                sorts=["event.id", "event_attribute.id"] if view != "event" else ["event.id"],
                limit="5000",
            )
            timings[view] = time.perf_counter() - started
            assert len(rows) == 5000 and rows[0]["event.id"] > middle
    print(
        f"\n1M events generated in {generated:.2f}s; 5000-row keyset pages over HTTP: "
        + ", ".join(f"{v} {t * 1000:.0f} ms" for v, t in timings.items())
    )
    assert generated < 30 and max(timings.values()) < 5


# ------------------------------------------------ me(), and SQL errors answered with HTTP 200
def test_me_answers_the_api_users_id_as_looker_40_does(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    assert sdk.me(fields="id").id == str(emulator.api_user_id)  # API 4.0 ids are strings
    emulator.data.add_user(emulator.api_user_id, "exporter@api.example.com", "Audit Exporter")
    found = sdk.me()
    assert (found.id, found.email, found.display_name) == (str(emulator.api_user_id), "exporter@api.example.com",
                                                          "Audit Exporter")
    assert requests.get(f"{emulator.base_url}/api/4.0/user", timeout=5).status_code == 401
    assert emulator.stats()["me_calls"] == 2


def test_a_sql_error_is_answered_with_http_200_for_the_chosen_view_only(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    emulator.inject_sql_error("Unknown column 'event_attribute.région' in 'field list'", view="event_attribute")
    assert run(sdk, "event", ["event.id"], sorts=["event.id"], limit="1") == [{"event.id": 10}]
    body = models40.WriteQuery(model="system__activity", view="event_attribute", fields=["event_attribute.id"])
    raw = requests.post(f"{emulator.base_url}/api/4.0/queries/run/json", json=dict(body),
                        headers={"Authorization": f"token {sdk.auth.token.access_token}"}, timeout=5)
    assert raw.status_code == 200
    assert raw.json() == [{"looker_error": "Unknown column 'event_attribute.région' in 'field list'"}]
    # consumed, and never cached: the same query answers its rows again
    assert run(sdk, "event_attribute", ["event_attribute.id"], sorts=["event_attribute.id"], limit="1") == [
        {"event_attribute.id": 1}]
    assert emulator.stats()["sql_errors"] == 1


def test_a_sql_error_can_follow_real_rows_and_hit_any_view(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    emulator.inject_sql_error("Lost connection to MySQL server during query", times=2, after_rows=True)
    assert run(sdk, "user", ["user.id"], sorts=["user.id"]) == [
        {"user.id": 1}, {"user.id": 2}, {"looker_error": "Lost connection to MySQL server during query"}]
    assert run(sdk, "event", ["event.id"], sorts=["event.id"], limit="2")[-1] == {
        "looker_error": "Lost connection to MySQL server during query"}
    assert run(sdk, "event", ["event.id"], sorts=["event.id"], limit="2") == [{"event.id": 10}, {"event.id": 13}]
    with pytest.raises(ValueError, match="view 'nope'"):
        emulator.inject_sql_error("x", view="nope")


def test_synthetic_data_can_hold_the_api_users_own_logins_and_queries() -> None:
    data = SystemActivity.synthetic(2_000, end=T0, span=timedelta(hours=6), seed=3, n_history=800,
                                    api_user_id=API_USER_ID)
    own_logins = [e for e in data.events_after(-1) if e.user_id == API_USER_ID]
    assert own_logins and {(e.name, e.is_api_call, e.sudo_user_id) for e in own_logins} == {("login", True, None)}
    rows = [data.history.entry_at(i) for i in range(len(data.history))]
    own = [row for row in rows if row.user_id == API_USER_ID]
    assert len(own) == 100 and {row.model for row in own} == {"system__activity"}
    assert {row.source for row in own} == {"api", "api3"}  # the filter must not depend on the source name
    assert {row.view for row in own} == {"event", "event_attribute", "user", "history"}
    plain = SystemActivity.synthetic(2_000, end=T0, span=timedelta(hours=6), seed=3, n_history=800)
    assert API_USER_ID not in plain.users and API_USER_ID not in set(plain.history.user_id)
    assert API_USER_ID not in set(plain.user_id)


# ------------------------------------------------------- time zone settings and explore metadata
def test_settings_answer_the_time_zone_fields_and_403_for_a_non_admin(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    setting = sdk.get_setting(fields="timezone,allow_user_timezones")
    assert (setting.allow_user_timezones, setting.timezone) == (True, "UTC")
    emulator.set_time_zones(False, "America/New_York")
    setting = sdk.get_setting(fields="timezone,allow_user_timezones")
    assert (setting.allow_user_timezones, setting.timezone) == (False, "America/New_York")
    emulator.forbid_settings()
    with pytest.raises(sdk_error.SDKError):
        sdk.get_setting(fields="timezone,allow_user_timezones")
    raw = requests.get(f"{emulator.base_url}/api/4.0/setting", timeout=5,
                       headers={"Authorization": f"Bearer {sdk.auth.token.access_token}"})
    assert raw.status_code == 403


def test_user_time_zones_off_ignore_query_timezone_for_filters_and_results(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    # Event 21 happened at T0 = 12:00 UTC (08:00 EDT).
    utc = run(sdk, "event", ["event.id", "event.created_time"], filters={"event.created_time": "2024-03-10 12:00"},
              query_timezone="UTC")
    assert utc == [{"event.id": 21, "event.created_time": "2024-03-10 12:00:00"}]
    emulator.set_time_zones(False, "America/New_York")
    same = run(sdk, "event", ["event.id", "event.created_time"], filters={"event.created_time": "2024-03-10 12:00"},
               query_timezone="UTC")
    assert same == []  # the filter is read as 12:00 New York time
    local = run(sdk, "event", ["event.id", "event.created_time"], filters={"event.created_time": "2024-03-10 08:00"},
                query_timezone="UTC")
    assert local == [{"event.id": 21, "event.created_time": "2024-03-10 08:00:00"}]


def test_explore_metadata_lists_fields_and_a_lacking_field_is_unknown_to_queries(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    explore = sdk.lookml_model_explore("system__activity", "user", fields="fields")
    names = {field.name for field in explore.fields.dimensions}
    assert {"user.id", "user.email", "user.created_time", "permission_set.permissions"} <= names
    assert explore.name is None  # only the fields were asked for
    emulator.lack_field("permission_set.permissions", "user")
    explore = sdk.lookml_model_explore("system__activity", "user", fields="fields")
    assert "permission_set.permissions" not in {field.name for field in explore.fields.dimensions}
    with pytest.raises(sdk_error.SDKError):  # refused as an unknown field is (the emulator answers 400)
        run(sdk, "user", ["user.id", "permission_set.permissions"])
    assert "user.id" in {f.name for f in sdk.lookml_model_explore("system__activity", "event").fields.dimensions}
    with pytest.raises(sdk_error.SDKError, match="Not found"):
        sdk.lookml_model_explore("system__activity", "no_such_explore")

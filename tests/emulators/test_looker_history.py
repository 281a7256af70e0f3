"""The Looker emulator's ``history`` explore (query history), over HTTP with the real ``looker_sdk``."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from looker_client import CLIENT_ID, CLIENT_SECRET, T0, FakeClock, run, sdk_for
from looker_sdk import error as sdk_error

from emulators.looker import LookerEmulator
from emulators.looker_data import HISTORY_SOURCES, SystemActivity

ALL = [
    "history.id",
    "history.created_time",
    "history.completed_time",
    "history.status",
    "history.source",
    "history.runtime",
    "history.result_source",
    "history.message",
    "history.dashboard_id",
    "history.look_id",
    "query.id",
    "query.model",
    "query.view",
    "user.id",
    "user.email",
    "user.name",
]


def small_history() -> SystemActivity:
    data = SystemActivity()
    data.add_user(1, "ana@example.com", "Ana Éclair")
    data.add_user(2, "kenji@example.com", "山田 健二")
    data.add_history(
        created=T0 - timedelta(hours=3),
        source="explore",
        user_id=1,
        runtime=1.25,
        query_id=40,
        model="thelook",
        view="orders",
        id=5,
    )
    data.add_history(
        created=T0 - timedelta(hours=2),
        source="dashboard",
        status="error",
        user_id=2,
        runtime=30.5,
        message="Query timed out après 30 s",
        dashboard_id=3,
        query_id=41,
        model="marketing_日本",
        view="campaigns",
        id=7,
    )
    data.add_history(
        created=T0 - timedelta(hours=1),
        source="look",
        user_id=77,  # deleted user
        runtime=0.004,
        result_source="cache",
        look_id=9,
        query_id=40,
        id=8,
    )
    data.add_history(created=T0 - timedelta(minutes=1), source="api", status="running", user_id=1, query_id=42, id=12)
    return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=2))


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[LookerEmulator]:
    with LookerEmulator(small_history(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock,
                        record_queries=False) as emu:  # the explore's semantics on fixed rows
        yield emu


@pytest.fixture(scope="module")
def big() -> Iterator[LookerEmulator]:
    data = SystemActivity.synthetic(100, end=T0, span=timedelta(days=2), seed=5, n_history=12_345)
    with LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, record_queries=False) as emu:
        yield emu


def test_every_field_in_utc(emulator: LookerEmulator) -> None:
    rows = run(sdk_for(emulator.base_url), "history", ALL, sorts=["history.id"], query_timezone="UTC")
    assert rows == [
        {
            "history.id": 5,
            "history.created_time": "2024-03-10 09:00:00",
            "history.completed_time": "2024-03-10 09:00:01",
            "history.status": "complete",
            "history.source": "explore",
            "history.runtime": 1.25,
            "history.result_source": "query",
            "history.message": None,
            "history.dashboard_id": None,
            "history.look_id": None,
            "query.id": 40,
            "query.model": "thelook",
            "query.view": "orders",
            "user.id": 1,
            "user.email": "ana@example.com",
            "user.name": "Ana Éclair",
        },
        {
            "history.id": 7,
            "history.created_time": "2024-03-10 10:00:00",
            "history.completed_time": "2024-03-10 10:00:30",
            "history.status": "error",
            "history.source": "dashboard",
            "history.runtime": 30.5,
            "history.result_source": "query",
            "history.message": "Query timed out après 30 s",
            "history.dashboard_id": 3,
            "history.look_id": None,
            "query.id": 41,
            "query.model": "marketing_日本",
            "query.view": "campaigns",
            "user.id": 2,
            "user.email": "kenji@example.com",
            "user.name": "山田 健二",
        },
        {
            "history.id": 8,
            "history.created_time": "2024-03-10 11:00:00",
            "history.completed_time": "2024-03-10 11:00:00",
            "history.status": "complete",
            "history.source": "look",
            "history.runtime": 0.004,
            "history.result_source": "cache",
            "history.message": None,
            "history.dashboard_id": None,
            "history.look_id": 9,
            "query.id": 40,
            "query.model": "thelook",
            "query.view": "orders",
            "user.id": None,
            "user.email": None,
            "user.name": None,
        },
        {
            "history.id": 12,
            "history.created_time": "2024-03-10 11:59:00",
            "history.completed_time": None,
            "history.status": "running",
            "history.source": "api",
            "history.runtime": None,
            "history.result_source": None,
            "history.message": None,
            "history.dashboard_id": None,
            "history.look_id": None,
            "query.id": 42,
            "query.model": "thelook",
            "query.view": "orders",
            "user.id": 1,
            "user.email": "ana@example.com",
            "user.name": "Ana Éclair",
        },
    ]


def test_times_follow_the_query_or_user_time_zone(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    fields = ["history.id", "history.created_time", "history.completed_time"]
    # the API user's zone, America/Los_Angeles: PST (UTC-8) before 10:00 UTC, PDT (UTC-7) after
    assert run(sdk, "history", fields, sorts=["history.id"], limit="2") == [
        {
            "history.id": 5,
            "history.created_time": "2024-03-10 01:00:00",
            "history.completed_time": "2024-03-10 01:00:01",
        },
        {
            "history.id": 7,
            "history.created_time": "2024-03-10 03:00:00",
            "history.completed_time": "2024-03-10 03:00:30",
        },
    ]
    assert run(sdk, "history", fields, filters={"history.id": "7"}, query_timezone="Asia/Tokyo") == [
        {
            "history.id": 7,
            "history.created_time": "2024-03-10 19:00:00",
            "history.completed_time": "2024-03-10 19:00:30",
        }
    ]
    # filters are read in the same zone, end-exclusive
    in_la = run(
        sdk,
        "history",
        ["history.id"],
        filters={"history.created_time": "2024-03-10 01:00:00 to 2024-03-10 03:00:00"},
        sorts=["history.id"],
    )
    assert in_la == [{"history.id": 5}]
    in_tokyo = run(
        sdk,
        "history",
        ["history.id"],
        filters={"history.completed_time": "after 2024-03-10 19:00:30"},
        sorts=["history.id"],
        query_timezone="Asia/Tokyo",
    )
    assert in_tokyo == [{"history.id": 7}, {"history.id": 8}]  # the running row has no completed time


def test_default_sort_is_newest_first_on_created_time(emulator: LookerEmulator) -> None:
    rows = run(sdk_for(emulator.base_url), "history", ["history.id", "history.created_time"])
    assert [r["history.id"] for r in rows] == [12, 8, 7, 5]
    by_runtime = run(sdk_for(emulator.base_url), "history", ["history.id", "history.runtime"],
                     sorts=["history.runtime desc"])
    assert [r["history.id"] for r in by_runtime] == [7, 5, 8, 12]  # NULL sorts first ascending, last descending


@pytest.mark.parametrize(
    ("field", "expr", "expected"),
    [
        ("history.id", ">7", [8, 12]),
        ("history.id", "[5,8)", [5, 7]),
        ("history.status", "running", [12]),
        ("history.status", "-complete", [7, 12]),
        ("history.source", "dashboard,look", [7, 8]),
        ("history.runtime", "<1", [8]),
        ("history.runtime", ">=1.25", [5, 7]),
        ("history.runtime", "NULL", [12]),
        ("history.result_source", "cache", [8]),
        ("history.result_source", "NULL", [12]),
        ("history.message", "%après%", [7]),
        ("history.message", "-NULL", [7]),
        ("history.completed_time", "NULL", [12]),
        ("history.completed_time", "NOT NULL", [5, 7, 8]),
        ("history.created_time", "2 hours", [8, 12]),
        ("history.dashboard_id", "NOT NULL", [7]),
        ("history.look_id", "9", [8]),
        ("query.id", "40", [5, 8]),
        ("query.model", "marketing%", [7]),
        ("query.view", "orders", [5, 8, 12]),
        ("user.id", "NULL", [8]),
        ("user.email", "%@example.com", [5, 7, 12]),
    ],
)
def test_filters_on_history_fields(emulator: LookerEmulator, field: str, expr: str, expected: list[int]) -> None:
    rows = run(sdk_for(emulator.base_url), "history", ["history.id"], filters={field: expr}, sorts=["history.id"])
    assert [r["history.id"] for r in rows] == expected


def test_running_rows_complete_later_and_the_cache_stays_stale_for_12_hours(
    emulator: LookerEmulator, clock: FakeClock
) -> None:
    sdk = sdk_for(emulator.base_url)
    fields = ["history.id", "history.status", "history.completed_time", "history.runtime", "history.result_source"]
    first = run(sdk, "history", fields, sorts=["history.id"], query_timezone="UTC")
    assert first[-1] == {
        "history.id": 12,
        "history.status": "running",
        "history.completed_time": None,
        "history.runtime": None,
        "history.result_source": None,
    }
    emulator.data.complete_history(12, completed=T0 + timedelta(minutes=1), runtime=120.0, result_source="query")
    done = {
        "history.id": 12,
        "history.status": "complete",
        "history.completed_time": "2024-03-10 12:01:00",
        "history.runtime": 120.0,
        "history.result_source": "query",
    }
    assert run(sdk, "history", fields, sorts=["history.id"], query_timezone="UTC", cache=False) == first  # cached
    assert emulator.stats()["cache_hits"] == 1
    other = run(sdk, "history", fields, sorts=["history.id desc"], query_timezone="UTC")  # a different query
    assert other[0] == done
    clock.now += timedelta(hours=11, minutes=59)
    assert run(sdk_for(emulator.base_url), "history", fields, sorts=["history.id"], query_timezone="UTC") == first
    clock.now += timedelta(minutes=1)  # history explore: 12 hours
    assert run(sdk_for(emulator.base_url), "history", fields, sorts=["history.id"], query_timezone="UTC")[-1] == done
    assert emulator.data.history_entry(12).status == "complete"
    with pytest.raises(ValueError, match="not running"):
        emulator.data.complete_history(12, completed=T0 + timedelta(minutes=2), runtime=1.0)


def test_complete_history_as_an_error_or_killed(emulator: LookerEmulator) -> None:
    data = emulator.data
    killed = data.add_history(created=T0, source="sqlrunner", status="running", user_id=2)
    failed = data.add_history(created=T0, source="scheduled_task", status="running", dashboard_id=4, id_gap=3)
    assert (killed, failed) == (13, 16)
    data.complete_history(
        killed, status="killed", completed=T0 + timedelta(seconds=90), runtime=90.0, result_source=None
    )
    data.complete_history(
        failed, status="error", completed=T0 + timedelta(seconds=2), runtime=2.0, message="Warehouse suspended"
    )
    rows = run(
        sdk_for(emulator.base_url),
        "history",
        ["history.id", "history.status", "history.result_source", "history.message", "query.id"],
        filters={"history.id": ">12"},
        sorts=["history.id"],
    )
    assert rows == [
        {
            "history.id": 13,
            "history.status": "killed",
            "history.result_source": None,
            "history.message": None,
            "query.id": 43,
        },
        {
            "history.id": 16,
            "history.status": "error",
            "history.result_source": "query",
            "history.message": "Warehouse suspended",
            "query.id": 44,
        },
    ]


def test_store_refuses_inconsistent_rows() -> None:
    data = SystemActivity()
    hid = data.add_history(created=T0, source="api", status="running")
    with pytest.raises(ValueError, match="running"):
        data.add_history(created=T0, source="api", status="running", runtime=1.0)
    with pytest.raises(ValueError, match="message"):
        data.add_history(created=T0, source="api", status="error")
    with pytest.raises(ValueError, match="message"):
        data.add_history(created=T0, source="api", message="boom")
    with pytest.raises(ValueError, match="status"):
        data.add_history(created=T0, source="api", status="done")
    with pytest.raises(ValueError, match="result_source"):
        data.add_history(created=T0, source="api", result_source="memory")
    with pytest.raises(ValueError, match="before"):
        data.add_history(created=T0, source="api", completed=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="exceed"):
        data.add_history(created=T0, source="api", id=hid)
    with pytest.raises(ValueError, match="message"):
        data.complete_history(hid, status="error", completed=T0, runtime=0.0)
    with pytest.raises(KeyError):
        data.complete_history(hid + 1, completed=T0, runtime=0.0)
    derived = data.add_history(created=T0, source="api", completed=T0 + timedelta(milliseconds=1500))
    assert data.history_entry(derived).runtime == 1.5
    assert data.history_entry(hid).completed is None and len(data.history) == 2


@pytest.mark.parametrize(
    ("fields", "filters", "sorts"),
    [
        (["history.nope"], {}, []),
        (["event.id"], {}, []),
        (["history.id"], {"history.bogus": "1"}, []),
        (["history.id"], {}, ["history.nope"]),
        (["history.id"], {"history.runtime": "fast"}, []),
        (["history.id"], {"history.completed_time": "whenever"}, []),
    ],
)
def test_unknown_fields_and_bad_filters_are_400(
    emulator: LookerEmulator, fields: list[str], filters: dict[str, str], sorts: list[str]
) -> None:
    token = requests.post(
        f"{emulator.base_url}/api/4.0/login",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=5,
    ).json()["access_token"]
    answer = requests.post(
        f"{emulator.base_url}/api/4.0/queries/run/json",
        json={"model": "system__activity", "view": "history", "fields": fields, "filters": filters, "sorts": sorts},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["message"]
    with pytest.raises(sdk_error.SDKError):
        run(sdk_for(emulator.base_url), "history", fields, filters=filters, sorts=sorts)


def test_keyset_paging_by_history_id_sees_every_row_once(big: LookerEmulator) -> None:
    sdk, last, seen = sdk_for(big.base_url), 0, []
    assert len(run(sdk, "history", ["history.id"])) == 5000  # the silent default limit
    while page := run(
        sdk,
        "history",
        ["history.id", "history.created_time", "history.status"],
        filters={"history.id": f">{last}"},
        sorts=["history.id"],
        limit="5000",
    ):
        seen += [row["history.id"] for row in page]
        last = page[-1]["history.id"]
    assert len(seen) == 12_345 and seen == sorted(set(seen))
    assert any(b - a > 1 for a, b in itertools.pairwise(seen))  # ids have gaps
    assert seen == list(big.data.history.ids)


def test_id_and_created_time_ranges_narrow_by_bisect(big: LookerEmulator) -> None:
    engine, history = big.engine, big.data.history
    middle = history.ids[10_000]
    query = {"model": "system__activity", "view": "history", "fields": ["history.id"]}
    plan = engine.plan({**query, "filters": {"history.id": f">{middle}"}, "sorts": ["history.id"]}, "10", T0)
    candidates, _ = engine.candidates(plan)
    assert len(candidates) == 12_345 - 10_000  # not a scan of every row
    assert [r["history.id"] for r in engine.run(plan)] == list(history.ids[10_001:10_011])
    window = {"history.created_time": "2024-03-09 12:00:00 to 2024-03-09 13:00:00"}
    plan = engine.plan({**query, "filters": window, "query_timezone": "UTC"}, "-1", T0)
    candidates, _ = engine.candidates(plan)
    assert 0 < len(candidates) < 1000
    assert len(engine.run(plan)) == len(candidates)


def test_synthetic_history_is_realistic_and_deterministic() -> None:
    data = SystemActivity.synthetic(10, end=T0, span=timedelta(hours=6), seed=3, n_history=20_000)
    again = SystemActivity.synthetic(10, end=T0, span=timedelta(hours=6), seed=3, n_history=20_000)
    h = data.history
    assert h.ids == again.history.ids and h.runtime.tobytes() == again.history.runtime.tobytes()
    rows = [h.entry_at(i) for i in range(len(h))]
    assert all(a.id < b.id and a.created <= b.created for a, b in itertools.pairwise(rows))
    assert T0 - timedelta(hours=6) <= rows[0].created and rows[-1].created <= T0
    statuses = Counter(r.status for r in rows)
    assert set(statuses) == {"complete", "error", "killed", "cache_only_miss", "running"}
    assert statuses["complete"] > 0.85 * len(rows) and 3 <= statuses["running"] < 100
    running = [r for r in rows if r.status == "running"]
    assert all(r.completed is None and r.runtime is None and r.result_source is None for r in running)
    assert all(r.created > T0 - timedelta(hours=1) for r in running) and rows[-1].status == "running"
    finished = [r for r in rows if r.status != "running"]
    assert all(r.completed and r.runtime is not None and r.completed <= T0 for r in finished)
    assert all((r.message is not None) == (r.status == "error") for r in rows)
    assert len({r.message for r in rows if r.message}) > 3
    cached = [r.runtime or 0.0 for r in finished if r.result_source in ("cache", "datagroup")]
    assert len(cached) > 0.25 * len(rows) and max(cached) < 0.1
    assert {name for name, _, _ in HISTORY_SOURCES} == {r.source for r in rows}
    for r in rows:
        if r.source in ("dashboard", "drill_modal", "alerts", "merge_query", "private_embed", "data-download-api",
                        "render_manager_cache"):
            assert r.dashboard_id is not None and r.look_id is None
        elif r.source in ("look", "public_url"):
            assert r.look_id is not None and r.dashboard_id is None
        elif r.source == "scheduled_task":
            assert (r.look_id is None) != (r.dashboard_id is None)
        else:
            assert r.look_id is None and r.dashboard_id is None
    assert all(r.user_id is None for r in rows if r.source == "public_url")
    assert any(r.user_id == 9999 for r in rows)  # a deleted user
    models = {r.query_id: (r.model, r.view) for r in rows}
    assert all(models[r.query_id] == (r.model, r.view) for r in rows)  # a query has one model and view
    assert len(models) < len(rows) / 2  # queries run again and again


def test_200k_history_rows_keyset_page_latency() -> None:
    started = time.perf_counter()
    data = SystemActivity.synthetic(10, end=T0, span=timedelta(days=7), n_history=200_000)
    generated = time.perf_counter() - started
    with LookerEmulator(data, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, record_queries=False) as emu:
        middle = data.history.ids[100_000]
        started = time.perf_counter()
        rows = run(sdk_for(emu.base_url), "history", ALL, filters={"history.id": f">{middle}"}, sorts=["history.id"],
                   limit="5000")
        elapsed = time.perf_counter() - started
    assert len(rows) == 5000 and rows[0]["history.id"] > middle
    print(f"\n200k history rows generated in {generated:.2f}s; a 5000-row keyset page in {elapsed * 1000:.0f} ms")
    assert generated < 10 and elapsed < 3


def test_python_m_emulators_serves_synthetic_history() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators",
            "--events",
            "50",
            "--history",
            "3000",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        env = json.loads(process.stdout.readline())
        sdk = sdk_for(env["LOOKER_BASE_URL"])
        rows = run(sdk, "history", ["history.id", "history.status"], sorts=["history.id"], limit="-1")
        assert len(rows) == 3000
        assert rows[-1]["history.status"] == "running"
    finally:
        process.terminate()
        process.wait(timeout=10)

"""The emulator's readings of how System Activity shows time, and its record of each query in History.

No document settles in which zone System Activity's times come back
(https://cloud.google.com/looker/docs/using-time-zone-settings), so the emulator models each plausible
reading as a switch: (a) converted to the query's zone (the default); (b) unconverted, in the system time
zone, with filters still read in the query's zone; (c) queries running in another zone than ``GET /setting``
reports. Whichever holds, every query is kept in the History explore with the API user's id and its start,
shown like every other System Activity time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from looker_client import CLIENT_ID, CLIENT_SECRET, FakeClock, run, sdk_for
from looker_sdk import error as sdk_error

from emulators.looker import LookerEmulator, parse_fields, select
from emulators.looker_data import API_USER_ID, SystemActivity

#: Berlin leaves summer time on 2026-10-25 at 01:00 UTC; New York on 2026-11-01 at 06:00 UTC.
BERLIN_CHANGE = datetime(2026, 10, 25, 1, tzinfo=UTC)
NOW = BERLIN_CHANGE + timedelta(hours=1, minutes=30)


def data() -> SystemActivity:
    found = SystemActivity()
    found.add_event("login", created=BERLIN_CHANGE - timedelta(minutes=30), id=1)  # 02:30 CEST
    found.add_event("login", created=BERLIN_CHANGE + timedelta(minutes=30), id=2)  # 02:30 CET
    return found


@pytest.fixture
def emulator() -> Iterator[LookerEmulator]:
    with LookerEmulator(data(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=FakeClock(NOW)) as emu:
        yield emu


def times(emulator: LookerEmulator, **query: Any) -> list[str]:
    rows = run(sdk_for(emulator.base_url), "event", ["event.id", "event.created_time"], sorts=["event.id"],
               **query)
    return [row["event.created_time"] for row in rows]


def test_a_times_are_converted_to_the_query_zone(emulator: LookerEmulator) -> None:
    assert times(emulator, query_timezone="UTC") == ["2026-10-25 00:30:00", "2026-10-25 01:30:00"]
    assert times(emulator, query_timezone="Europe/Berlin") == ["2026-10-25 02:30:00", "2026-10-25 02:30:00"]


def test_b_unconverted_times_show_in_the_system_zone_while_filters_stay_in_the_query_zone(
        emulator: LookerEmulator) -> None:
    emulator.show_unconverted("Europe/Berlin")
    assert times(emulator, query_timezone="UTC") == ["2026-10-25 02:30:00", "2026-10-25 02:30:00"]
    # "before 01:00" read in the query's zone (UTC) keeps the first event only, though both show 02:30
    assert times(emulator, query_timezone="UTC",
                 filters={"event.created_time": "before 2026-10-25 01:00:00"}) == ["2026-10-25 02:30:00"]


def test_c_queries_run_in_another_zone_than_the_settings_report(emulator: LookerEmulator) -> None:
    emulator.set_time_zones(False, "America/New_York", runs_in="Europe/Berlin")
    assert sdk_for(emulator.base_url).get_setting(fields="timezone").timezone == "America/New_York"
    assert times(emulator, query_timezone="UTC") == ["2026-10-25 02:30:00", "2026-10-25 02:30:00"]


def own_history(emulator: LookerEmulator, **query: str) -> list[dict[str, object]]:
    return run(sdk_for(emulator.base_url), "history",
               ["history.id", "history.created_time", "user.id", "query.view", "query.formatted_filters"],
               filters={"user.id": str(API_USER_ID)}, sorts=["history.id"], **query)


@pytest.mark.parametrize(("switch", "shown"), [
    ("converted", "2026-10-25 03:30:00"),  # Europe/Berlin, the query's zone: CET after the change
    ("unconverted", "2026-10-25 11:30:00"),  # the system zone Asia/Tokyo
    ("runs_elsewhere", "2026-10-24 22:30:00"),  # the zone the queries really run in, America/New_York
])
def test_each_query_is_kept_in_history_with_the_api_users_id_and_its_start_shown_like_other_times(
        emulator: LookerEmulator, switch: str, shown: str) -> None:
    if switch == "unconverted":
        emulator.show_unconverted("Asia/Tokyo")
    if switch == "runs_elsewhere":
        emulator.set_time_zones(False, "UTC", runs_in="America/New_York")
    times(emulator, query_timezone="Europe/Berlin", filters={"event.id": "[1, 1001234567890123]"})
    (row,) = own_history(emulator, query_timezone="Europe/Berlin")
    assert row["history.created_time"] == shown and row["user.id"] == API_USER_ID
    assert row["query.view"] == "event"
    assert "1001234567890123" in str(row["query.formatted_filters"])


def test_recording_can_be_switched_off_for_tests_of_the_explores_own_rows(emulator: LookerEmulator) -> None:
    emulator.record_queries = False
    times(emulator)
    assert own_history(emulator) == []


@pytest.mark.parametrize("status", [403, 404])
def test_settings_refused_with_either_status(emulator: LookerEmulator, status: int) -> None:
    emulator.forbid_settings(status=status)
    with pytest.raises(sdk_error.SDKError):
        sdk_for(emulator.base_url).get_setting(fields="timezone")


def test_explore_metadata_answers_only_the_nested_attributes_asked_for(emulator: LookerEmulator) -> None:
    sdk = sdk_for(emulator.base_url)
    explore = sdk.lookml_model_explore("system__activity", "event",
                                       fields="fields(dimensions(name),measures(name),filters(name))")
    assert explore.name is None and explore.fields is not None and explore.fields.parameters is None
    dimensions = explore.fields.dimensions or []
    assert "event.id" in {d.name for d in dimensions} and all(d.type is None for d in dimensions)
    assert parse_fields("a,b(c,d(e))") == {"a": {}, "b": {"c": {}, "d": {"e": {}}}}
    assert select({"a": 1, "b": [{"c": 2, "x": 3}]}, "b(c)") == {"b": [{"c": 2}]}
    for broken in ("a(b", "a)", "(b)"):
        with pytest.raises(Exception, match="Invalid fields parameter"):
            parse_fields(broken)

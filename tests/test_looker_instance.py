"""What the Looker instance is like: its time zone settings and its System Activity fields, over the wire.

With User Specific Time Zones off, Looker reads filters and returns datetimes in the instance's zone and
ignores ``query_timezone`` (https://cloud.google.com/looker/docs/using-time-zone-settings); the exporter must
still write every event at its true UTC time, DST changes included, or refuse.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack

from emulators.looker import LookerEmulator
from emulators.looker_data import SystemActivity
from looker_audit_export.config import Config
from looker_audit_export.export.run import Exporter
from looker_audit_export.export.summary import ExportError
from looker_audit_export.looker.explores import EVENTS
from looker_audit_export.looker.reader import Instance
from looker_audit_export.sink import JsonLinesSink
from looker_audit_export.timezones import TIME_FIELDS, WallClock, convert_rows, zone_info
from looker_audit_export.values import parse_looker_time
from looker_audit_export.wiring import build_exporter

NEW_YORK = "America/New_York"
#: US DST ends 2026-11-01 06:00 UTC (02:00 EDT becomes 01:00 EST: 01:00-01:59 happens twice) and
#: starts 2026-03-08 07:00 UTC (02:00 EST becomes 03:00 EDT: 02:00-02:59 never happens).
FALL_BACK = datetime(2026, 11, 1, 6, tzinfo=UTC)
SPRING_FORWARD = datetime(2026, 3, 8, 7, tzinfo=UTC)


def around(change: datetime, *, step_minutes: int = 7) -> SystemActivity:
    """An event every few minutes from 3 hours before a DST change to 3 hours after, ids in time order."""
    data = SystemActivity()
    data.add_user(1, "ana@example.com", "Ana", {"Admin": ("see_system_activity",)})
    moment = change - timedelta(hours=3)
    while moment < change + timedelta(hours=3):
        data.add_event("login", created=moment, user_id=1, attributes={"type": "email"})
        moment += timedelta(minutes=step_minutes)
    return data


#: The Looker emulator of the running test: its clock follows the exporter's (its History records each query
#: at the emulator's time, and the exporter measures from it).
LOOKER: list[LookerEmulator] = []


@pytest.fixture(autouse=True)
def _same_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    if "stack" in request.fixturenames:
        LOOKER.append(request.getfixturevalue("stack").looker)
    yield
    LOOKER.clear()


def at(exporter: Exporter, now: datetime, data: SystemActivity | None = None) -> Exporter:
    """The exporter (and its Looker source, and Looker) running at ``now``; ``data`` then shows only events
    before it."""
    exporter.clock = exporter.source.clock = lambda: now
    for looker in LOOKER:
        looker.clock = lambda: now
    if data is not None:
        data.reveal_all()
        data.hide_after(max((e.id for e in data.events_after(-1) if e.created <= now), default=0))
    return exporter


#: The entries the exporters of a test wrote, as JSON lines: Cloud Logging would not keep entries dated
#: more than 30 days back, and the DST changes tested are fixed dates, so the dry-run sink holds them.
WRITTEN = io.StringIO()


def new_exporter(stack: Stack, **overrides: str) -> Exporter:
    """A fresh exporter (a cold instance) writing to WRITTEN instead of Cloud Logging."""
    return build_exporter(Config.from_env({**stack.env, **overrides}), sink=JsonLinesSink(WRITTEN))


@pytest.fixture(autouse=True)
def _fresh_output() -> None:
    WRITTEN.seek(0)
    WRITTEN.truncate()


def written() -> list[dict[str, Any]]:
    return [json.loads(line) for line in WRITTEN.getvalue().splitlines()]


def written_times(stack: Stack) -> dict[int, datetime]:
    """Each written event's entry timestamp, by event id."""
    times = {int(entry["insertId"].rsplit("-", 1)[1]): parse_looker_time(entry["timestamp"]) for entry in written()
             if "-event-" in entry["insertId"]}
    return {number: moment for number, moment in times.items() if moment is not None}


def true_times(stack: Stack) -> dict[int, datetime]:
    return {event.id: event.created for event in stack.data.events_after(-1)}


def sparse_second_pass() -> SystemActivity:
    """Two events at 01:12 and 01:20 EST and nothing before them: either could be EDT."""
    data = SystemActivity()
    for minutes in (12, 20):
        data.add_event("logout", created=FALL_BACK + timedelta(minutes=minutes))
    return data


@pytest.fixture
def data(request: pytest.FixtureRequest) -> SystemActivity:
    """Events around the fall-back change, or around the change (or from the builder) a test passes."""
    param = getattr(request, "param", FALL_BACK)
    return param() if callable(param) else around(param)


@pytest.mark.parametrize("page_size", ["5000", "4"])
def test_user_time_zones_off_fall_back_every_event_at_its_true_time(stack: Stack, page_size: str) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    summary = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", PAGE_SIZE=page_size),
                 FALL_BACK + timedelta(hours=4)).run()
    assert summary.caught_up
    assert written_times(stack) == true_times(stack)  # the repeated hour 01:00-01:59 placed by id order


def test_the_bug_it_fixes_the_utc_window_read_as_new_york_time_missed_everything(stack: Stack) -> None:
    """Looker ignores query_timezone here: the same rows come back as New York wall times, filters too."""
    stack.looker.set_time_zones(False, NEW_YORK)
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="60"), FALL_BACK + timedelta(hours=3, minutes=5)).run()
    times = written_times(stack)
    assert times and all(times[number] == true for number, true in true_times(stack).items() if number in times)
    assert min(times.values()) >= FALL_BACK + timedelta(hours=2)  # the last hour, not five hours earlier


def test_runs_every_ten_minutes_through_the_repeated_hour_on_one_instance(stack: Stack, tmp_path: Path) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    # 22 runs in a row: a local cursor, which Cloud Storage's one write a second per object does not pace.
    exporter = new_exporter(stack, INITIAL_LOOKBACK_MINUTES="200", SETTLE_SECONDS="0",
                            STATE_URI=str(tmp_path / "state.json"))
    now = FALL_BACK - timedelta(minutes=25)
    while now < FALL_BACK + timedelta(hours=3, minutes=10):
        at(exporter, now, stack.data).run()
        now += timedelta(minutes=10)
    stack.data.reveal_all()
    assert written_times(stack) == true_times(stack)


def test_a_new_instance_in_the_second_pass_reads_the_rows_before_its_cursor(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="200", SETTLE_SECONDS="0"), FALL_BACK - timedelta(minutes=1),
       stack.data).run()
    # A new instance, 30 minutes into the second pass: its rows read 01:04 to 01:27 and none of them steps
    # back in time; both readings (EDT and EST) are past. The rows before its cursor (01:xx EDT) tell.
    cold = at(new_exporter(stack, SETTLE_SECONDS="0"), FALL_BACK + timedelta(minutes=30), stack.data)
    calls = stack.looker.stats()["query_calls"]
    cold.run()
    stack.data.reveal_all()
    before_now = {number: moment for number, moment in true_times(stack).items()
                  if moment < FALL_BACK + timedelta(minutes=30)}
    assert written_times(stack) == before_now
    # page, the measurement (a cold start), the rows before the cursor, attributes, users
    assert stack.looker.stats()["query_calls"] - calls == 5


@pytest.mark.parametrize("data", [sparse_second_pass], indirect=True)
def test_a_repeated_hour_nothing_can_place_refuses_and_writes_nothing(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    with pytest.raises(ExportError, match=r"repeated hour of America/New_York.*Turn on User Specific Time Zones"):
        at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="60"), FALL_BACK + timedelta(minutes=40)).run()
    assert written() == [] and stack.cursor() == {}


@pytest.mark.parametrize("data", [SPRING_FORWARD], indirect=True)
def test_user_time_zones_off_spring_forward_every_event_at_its_true_time(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", PAGE_SIZE="7"), SPRING_FORWARD + timedelta(hours=4)).run()
    assert written_times(stack) == true_times(stack)


def test_filter_bounds_hold_whatever_zone_looker_reads_them_in() -> None:
    """No document says which zone filters are read in: a bound read in any UTC offset in use (UTC-12 to
    UTC+14), either reading of a repeated hour included, keeps the moment it bounds."""
    for moment in (FALL_BACK - timedelta(minutes=30), FALL_BACK + timedelta(minutes=30)):  # 01:30 EDT, 01:30 EST
        lower = datetime.fromisoformat(Instance.bound(moment, widen="earlier"))
        upper = datetime.fromisoformat(Instance.bound(moment, widen="later"))
        for minutes in range(-12 * 60, 14 * 60 + 1, 15):
            zone = timezone(timedelta(minutes=minutes))
            assert lower.replace(tzinfo=zone) <= moment <= upper.replace(tzinfo=zone)
        for name in (NEW_YORK, "Pacific/Kiritimati", "Etc/GMT+12"):
            for fold in (0, 1):
                assert lower.replace(tzinfo=zone_info(name), fold=fold) <= moment
                assert upper.replace(tzinfo=zone_info(name), fold=fold) >= moment


@pytest.mark.parametrize("data", [SPRING_FORWARD], indirect=True)
def test_a_wall_time_inside_the_spring_gap_is_an_error_row_not_a_shifted_time(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    victim = next(event.id for event in stack.data.events_after(-1) if event.created >= SPRING_FORWARD)
    stack.looker.tamper(victim, {"event.created_time": "2026-03-08 02:30:00"})  # no such time in New York
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), SPRING_FORWARD + timedelta(hours=4)).run()
    entry = next(e for e in written() if e["insertId"].endswith(f"-{victim}"))
    assert "not a time in America/New_York: inside its daylight-saving gap" in json.dumps(entry["protoPayload"])
    assert entry["severity"] == "WARNING"
    assert parse_looker_time(entry["timestamp"]) not in (datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
                                                         datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    others = {k: v for k, v in written_times(stack).items() if k != victim}
    assert others == {k: v for k, v in true_times(stack).items() if k != victim}


def test_settings_forbidden_without_the_variable_refuses_naming_setting_and_variable(stack: Stack) -> None:
    stack.looker.forbid_settings()
    with pytest.raises(ExportError) as failure:
        at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), FALL_BACK + timedelta(hours=4)).run()
    message = str(failure.value)
    assert "HTTP 403 on GET /api/4.0/setting" in message and "LOOKER_QUERY_TIMEZONE" in message
    assert "User Specific Time Zones" in message
    assert written() == [] and stack.cursor() == {}
    assert stack.looker.stats()["query_calls"] == 0  # refused before any query


def test_settings_forbidden_with_the_variable_reads_times_in_that_zone(stack: Stack) -> None:
    stack.looker.forbid_settings()
    stack.looker.set_time_zones(False, NEW_YORK)
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", LOOKER_QUERY_TIMEZONE=NEW_YORK),
       FALL_BACK + timedelta(hours=4)).run()
    assert written_times(stack) == true_times(stack)


def test_the_variable_contradicting_readable_settings_refuses(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    with pytest.raises(ExportError, match="LOOKER_QUERY_TIMEZONE=UTC disagrees with Looker's settings"):
        at(new_exporter(stack, LOOKER_QUERY_TIMEZONE="UTC"), FALL_BACK + timedelta(hours=4)).run()
    assert written() == []


def test_settings_are_read_once_per_instance(stack: Stack) -> None:
    exporter = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), FALL_BACK + timedelta(hours=4))
    exporter.run()
    stack.looker.forbid_settings()  # a second run would now fail if it asked again
    exporter.run()
    assert written_times(stack) == true_times(stack)


# ------------------------------------------------------------------ fields that may not be there
def test_a_missing_optional_field_exports_without_it_with_one_warning(stack: Stack,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    stack.looker.lack_field("permission_set.permissions", "user")
    stack.looker.lack_field("user.created_time", "user")
    exporter = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), FALL_BACK + timedelta(hours=4))
    with caplog.at_level(logging.WARNING):
        exporter.run()
        exporter.run()
    warnings = [r.getMessage() for r in caplog.records if "exporting without them" in r.getMessage()]
    assert warnings == ["Looker's system__activity explore 'user' has no field user.created_time, "
                        "permission_set.permissions; exporting without them (those details stay empty)"]
    assert written_times(stack) == true_times(stack)
    entry = written()[0]["protoPayload"]
    assert entry["authenticationInfo"]["principalEmail"] == "ana@example.com"
    assert "authorizationInfo" not in entry  # no permissions to show, and no failed run


def test_a_missing_required_field_refuses_naming_it(stack: Stack) -> None:
    stack.looker.lack_field("event.sudo_user_id")
    with pytest.raises(ExportError, match=r"explore 'event' has no field event\.sudo_user_id"):
        at(new_exporter(stack), FALL_BACK + timedelta(hours=4)).run()
    assert written() == [] and stack.looker.stats()["query_calls"] == 0


def history_around_fall_back() -> SystemActivity:
    """Query history every 11 minutes across the fall-back change, each query running 90 seconds."""
    data = around(FALL_BACK)
    moment = FALL_BACK - timedelta(hours=3)
    while moment < FALL_BACK + timedelta(hours=3):
        data.add_history(created=moment, source="api4", user_id=1, runtime=90.0)
        moment += timedelta(minutes=11)
    return data


@pytest.mark.parametrize("data", [history_around_fall_back], indirect=True)
def test_query_history_times_across_the_fall_back_are_true_too(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", EXPORT_STREAMS="events,history", PAGE_SIZE="5"),
       FALL_BACK + timedelta(hours=4)).run()
    entries = [e for e in written() if "-history-" in e["insertId"]]
    started = FALL_BACK - timedelta(hours=3)
    expected = [started + timedelta(minutes=11 * index) for index in range(len(entries))]
    assert len(entries) == 33
    assert [parse_looker_time(e["timestamp"]) for e in entries] == expected
    completed = [parse_looker_time(e["protoPayload"]["response"]["completed_time"]) for e in entries]
    assert completed == [moment + timedelta(seconds=90) for moment in expected]


def test_a_page_read_again_by_the_same_instance_is_placed_the_same(stack: Stack) -> None:
    """A redo (a failed write, a held-back row, a read-ahead page) reads rows again: each read is placed
    from its own rows, never from what the instance converted before."""
    stack.looker.set_time_zones(False, NEW_YORK)
    source = at(new_exporter(stack), FALL_BACK + timedelta(hours=4)).source
    deadline = time.monotonic() + 60
    reads = [source.page(EVENTS, after_id=None, since=FALL_BACK - timedelta(hours=4),
                         until=FALL_BACK + timedelta(hours=4), limit=5000, deadline=deadline) for _ in range(2)]
    placed = [{row["event.id"]: parse_looker_time(row["event.created_time"]) for row in rows} for rows in reads]
    assert placed[0] == placed[1] == true_times(stack)


def test_a_query_completed_in_the_repeated_hour_is_placed_after_its_own_start() -> None:
    """Completion times do not follow id order: of two readings, the first not before the query's start."""
    rows = [{"history.id": 1, "history.created_time": "2026-11-01 00:55:00",
             "history.completed_time": "2026-11-01 00:56:00"},
            {"history.id": 2, "history.created_time": "2026-11-01 01:50:00",  # first pass, EDT
             "history.completed_time": "2026-11-01 01:05:00"}]  # after 01:59 EDT came 01:00 EST: second pass
    zone = zone_info(NEW_YORK)
    clocks = {name: WallClock(zone) for name in TIME_FIELDS}
    assert convert_rows(rows, TIME_FIELDS, clocks, FALL_BACK + timedelta(hours=4), id_field="history.id") == 2
    assert rows[1]["history.created_time"] == "2026-11-01 05:50:00"
    assert rows[1]["history.completed_time"] == "2026-11-01 06:05:00"


# ------------------------------------------------------------------ how System Activity shows time, measured
#: Europe/Berlin leaves summer time on 2026-10-25 at 01:00 UTC (02:00-02:59 happens twice); London enters it
#: on 2026-03-29 at 01:00 UTC.
BERLIN_FALL_BACK = datetime(2026, 10, 25, 1, tzinfo=UTC)
LONDON_SPRING = datetime(2026, 3, 29, 1, tzinfo=UTC)
LOS_ANGELES = "America/Los_Angeles"


def configure(stack: Stack, case: str) -> None:
    """The three instances of issue 17, on the emulator's switches (no document rules any of them out)."""
    if case == "unconverted UTC, settings New York":  # user time zones off; filters still in New York time
        stack.looker.set_time_zones(False, NEW_YORK)
        stack.looker.show_unconverted("UTC")
    elif case == "unconverted Berlin, user zones on":  # a customer-hosted instance whose system zone is Berlin
        stack.looker.set_time_zones(True, "UTC")
        stack.looker.show_unconverted("Europe/Berlin")
    else:  # "runs in Los Angeles, settings New York": filters and times in Los Angeles
        stack.looker.set_time_zones(False, NEW_YORK, runs_in=LOS_ANGELES)


CASES = {  # case: (the DST change inside the window, LOOKER_QUERY_TIMEZONE that settles it, measured then)
    "unconverted UTC, settings New York": (FALL_BACK, "UTC", "UTC+00:00"),
    "unconverted Berlin, user zones on": (BERLIN_FALL_BACK, "Europe/Berlin", "UTC+01:00"),
    "runs in Los Angeles, settings New York": (FALL_BACK, LOS_ANGELES, "UTC-08:00"),
}


@pytest.mark.parametrize("data", [FALL_BACK, BERLIN_FALL_BACK], indirect=True, ids=["New York", "Berlin"])
@pytest.mark.parametrize("case", CASES)
def test_each_instance_without_the_variable_refuses_every_run_and_writes_nothing(stack: Stack, case: str,
                                                                                  data: SystemActivity) -> None:
    configure(stack, case)
    change = min(event.created for event in data.events_after(-1)) + timedelta(hours=3)
    for _ in range(2):  # a new instance each time: each measures and refuses the same way
        with pytest.raises(ExportError) as refused:
            at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), change + timedelta(hours=4)).run()
        message = str(refused.value)
        assert "System Activity shows times at UTC" in message and "LOOKER_QUERY_TIMEZONE" in message
        assert "nothing was exported and the cursor did not move" in message
        assert refused.value.summary.events_written == 0
    assert written() == [] and stack.cursor() == {}


@pytest.mark.parametrize("page_size", ["5000", "4"])
@pytest.mark.parametrize(("case", "data"), [(case, change) for case, (change, _, _) in CASES.items()],
                         indirect=["data"])
def test_each_instance_with_the_variable_exports_every_event_once_at_its_true_time_across_the_dst_change(
        stack: Stack, case: str, page_size: str, caplog: pytest.LogCaptureFixture) -> None:
    change, variable, offset = CASES[case]
    configure(stack, case)
    exporter = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", PAGE_SIZE=page_size,
                               LOOKER_QUERY_TIMEZONE=variable), change + timedelta(hours=4))
    with caplog.at_level(logging.WARNING):
        summary = exporter.run()
    assert summary.caught_up
    assert written_times(stack) == true_times(stack)
    assert len(written()) == len(true_times(stack))  # each once
    assert summary.time_reading is not None
    assert summary.time_reading["zone"] == variable and summary.time_reading["measured_offset"] == offset
    assert "the query it measured" in str(summary.time_reading["source"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "explains" in r.getMessage()]
    assert len(warnings) == 1 and variable in warnings[0] and offset in warnings[0]


def measurements(stack: Stack) -> int:
    """How many times the exporter measured: its queries on the History explore (the events stream reads none)."""
    history = stack.data.history
    return sum(1 for index in range(len(history)) if history.entry_at(index).view == "history")


def test_a_warm_instance_measures_at_its_cold_start_and_again_after_a_dst_change_only(stack: Stack) -> None:
    """User time zones off in New York, times converted as Looker documents: every ten minutes across the
    fall-back, the instance measures once at its cold start and once after the change, and all is exact."""
    stack.looker.set_time_zones(False, NEW_YORK)
    exporter = new_exporter(stack, INITIAL_LOOKBACK_MINUTES="200", SETTLE_SECONDS="0")
    now, counts = FALL_BACK - timedelta(minutes=45), []
    while now < FALL_BACK + timedelta(hours=1, minutes=10):
        at(exporter, now, stack.data).run()
        counts.append(measurements(stack))
        now += timedelta(minutes=10)
    last = now - timedelta(minutes=10)
    stack.data.reveal_all()
    assert written_times(stack) == {k: v for k, v in true_times(stack).items() if v < last}
    assert counts[0] == 1 and counts[-1] == 2  # the cold start, then the first run after the change
    assert counts.index(2) == 5  # the run at 06:05 UTC, the first with rows after 06:00 UTC


@pytest.mark.parametrize("data", [LONDON_SPRING], indirect=True)
def test_a_zone_that_agreed_before_a_dst_change_is_refused_after_it_never_shifted(stack: Stack) -> None:
    """Unconverted London times agree with UTC in winter: after London's spring change they show an hour
    ahead; the instance sees rows after their own query, measures again and refuses every run."""
    stack.looker.set_time_zones(True, NEW_YORK)
    stack.looker.show_unconverted("Europe/London")
    exporter = new_exporter(stack, INITIAL_LOOKBACK_MINUTES="200", SETTLE_SECONDS="0")
    failures, now = 0, LONDON_SPRING - timedelta(minutes=25)
    while now < LONDON_SPRING + timedelta(hours=1):
        try:
            at(exporter, now, stack.data).run()
        except ExportError as exc:
            assert "changed zone while this instance ran" in str(exc) or "UTC+01:00" in str(exc)
            failures += 1
        now += timedelta(minutes=10)
    stack.data.reveal_all()
    assert failures >= 5  # every run after the change
    truth = true_times(stack)
    last_before = LONDON_SPRING - timedelta(minutes=5)  # the last run before the change, at 00:55 UTC
    assert written_times(stack) == {k: v for k, v in truth.items() if v < last_before}


def test_settings_answered_404_refuse_without_the_variable_and_export_with_it(stack: Stack) -> None:
    """The spec documents 404, not 403, on GET /setting; Looker answers 404 where it refuses access."""
    stack.looker.set_time_zones(False, NEW_YORK)
    stack.looker.forbid_settings(status=404)
    with pytest.raises(ExportError, match=r"HTTP 404 on GET /api/4\.0/setting.*LOOKER_QUERY_TIMEZONE"):
        at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), FALL_BACK + timedelta(hours=4)).run()
    assert written() == [] and stack.cursor() == {}
    summary = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", LOOKER_QUERY_TIMEZONE=NEW_YORK),
                 FALL_BACK + timedelta(hours=4)).run()
    assert written_times(stack) == true_times(stack)
    assert summary.time_reading is not None and summary.time_reading["measured_offset"] == "UTC-05:00"


def test_settings_answered_404_with_a_variable_the_measurement_contradicts_refuses(stack: Stack) -> None:
    stack.looker.set_time_zones(False, NEW_YORK)
    stack.looker.forbid_settings(status=404)
    with pytest.raises(ExportError, match=r"System Activity shows times at UTC-05:00.*UTC\+00:00"):
        at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600", LOOKER_QUERY_TIMEZONE="UTC"),
           FALL_BACK + timedelta(hours=4)).run()
    assert written() == []


def test_an_instance_without_event_attribute_event_id_exports_every_event_with_its_attributes(
        stack: Stack) -> None:
    stack.looker.lack_field("event_attribute.event_id")
    at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), FALL_BACK + timedelta(hours=4)).run()
    entries = written()
    assert len(entries) == len(true_times(stack)) and written_times(stack) == true_times(stack)
    assert all(entry["protoPayload"]["response"]["attributes"]["type"] == "email" for entry in entries)


def test_with_history_shown_ten_minutes_late_a_first_run_refuses_and_the_next_measures_from_it(
        stack: Stack) -> None:
    """Elite System Activity refreshes History every 10 minutes: a new instance's own query is not there yet.
    Its first run writes nothing; the next one (a new instance too) measures from the query that run sent,
    placed within LOOKER_TIMEOUT_SECONDS of the second its marker carries."""
    stack.looker.set_time_zones(False, NEW_YORK)
    stack.looker.history_delay_seconds = 600
    first = FALL_BACK + timedelta(hours=2)
    with pytest.raises(ExportError, match="shows no query of the exporter's from the day before"):
        at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), first).run()
    assert written() == [] and stack.cursor() == {}
    second = first + timedelta(minutes=10)
    summary = at(new_exporter(stack, INITIAL_LOOKBACK_MINUTES="600"), second).run()
    settled = second - timedelta(seconds=60)  # SETTLE_SECONDS
    assert written_times(stack) == {k: v for k, v in true_times(stack).items() if v < settled}
    assert summary.time_reading is not None and summary.time_reading["measured_offset"] == "UTC-05:00"
    assert "an earlier query of its own, sent 2026-11-01 08:00:00 UTC" in str(summary.time_reading["source"])

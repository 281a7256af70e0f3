"""The pure measurement of how System Activity shows time: markers, offsets, the decision, DST periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from looker_audit_export.time_truth import (
    Measurement,
    changed,
    decide,
    is_looker_hosted,
    marker,
    marker_time,
    markers_in,
    measured_offset,
    offset_text,
    same_period_span,
    uncovered,
)
from looker_audit_export.timezones import TimeZoneError

SENT = datetime(2026, 11, 1, 7, 30, 5, tzinfo=UTC)
FALL_BACK = datetime(2026, 11, 1, 6, tzinfo=UTC)
BERLIN_FALL_BACK = datetime(2026, 10, 25, 1, tzinfo=UTC)


def test_a_marker_carries_the_second_it_was_sent_and_no_event_id_reaches_it() -> None:
    value = marker(SENT, 4_321)
    assert marker_time(value) == SENT
    assert value > 10**15 > 2**31 and value < 2**53
    assert marker(SENT, 1) != marker(SENT, 2)
    assert marker_time(12_345) is None
    text = f'{{"event.id": "[1001, {value}]", "event.created_time": "before 2026-11-02 10:30:05"}}'
    assert markers_in(text) == [value]
    assert markers_in(None) == [] and markers_in("[1, 99999999999999999]") == []  # 17 digits: not a marker


@pytest.mark.parametrize(("shown", "offset"), [
    (datetime(2026, 11, 1, 7, 30, 7), timedelta(0)),
    (datetime(2026, 11, 1, 2, 30, 6), timedelta(hours=-5)),
    (datetime(2026, 11, 1, 13, 15, 6), timedelta(hours=5, minutes=45)),
    (datetime(2026, 11, 1, 7, 28, 30), timedelta(0)),  # Looker's clock a little behind: within the skew
])
def test_the_offset_is_the_one_multiple_of_15_minutes_the_interval_allows(shown: datetime,
                                                                          offset: timedelta) -> None:
    assert measured_offset(shown, SENT, SENT + timedelta(seconds=3)) == offset


def test_an_interval_too_wide_to_tell_measures_nothing() -> None:
    shown = datetime(2026, 11, 1, 7, 30, 5)
    assert measured_offset(shown, SENT, SENT + timedelta(minutes=20)) is None  # 0 or -15 minutes
    assert measured_offset(datetime(2026, 11, 1, 7, 37, 30), SENT, SENT + timedelta(seconds=1)) is None


def test_offsets_are_written_as_utc_plus_minus_hours_and_minutes() -> None:
    assert [offset_text(timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (-5, 0), (5, 45), (-4, -30))] == [
        "UTC+00:00", "UTC-05:00", "UTC+05:45", "UTC-04:30"]


def measured(hours: float, at: datetime = SENT) -> Measurement:
    return Measurement(timedelta(hours=hours), at, "history.id 9 (the exporter's own event query)")


def test_agreement_converts_from_the_expected_zone() -> None:
    verdict = decide(measured(-5), expected="America/New_York", expected_how="user time zones off",
                     declared=None, host="looker.example.org")
    assert verdict.zone == "America/New_York" and verdict.warning is None
    assert "UTC-05:00" in verdict.how and "they agree" in verdict.how


def test_utc_on_a_looker_hosted_instance_is_explained_by_its_system_zone_with_a_warning() -> None:
    verdict = decide(measured(0), expected="America/New_York", expected_how="user time zones off",
                     declared=None, host="3417a175-fe20-4370-974f-2f2b535340ab.looker.app")
    assert verdict.zone == "UTC"
    assert verdict.warning is not None and "America/New_York" in verdict.warning and "UTC+00:00" in verdict.warning


def test_an_unexplained_disagreement_refuses_naming_offset_settings_zone_and_variable() -> None:
    with pytest.raises(TimeZoneError) as refused:
        decide(measured(0), expected="America/New_York", expected_how="user time zones off", declared=None,
               host="looker.example.org")
    message = str(refused.value)
    assert "UTC+00:00" in message and "America/New_York" in message and "LOOKER_QUERY_TIMEZONE" in message
    assert "nothing was exported and the cursor did not move" in message


def test_the_variable_settles_a_disagreement_it_explains_and_is_refused_when_it_does_not() -> None:
    verdict = decide(measured(-7), expected="America/New_York", expected_how="user time zones off",
                     declared="America/Los_Angeles", host="looker.example.org")
    assert verdict.zone == "America/Los_Angeles" and verdict.warning is not None
    with pytest.raises(TimeZoneError, match="LOOKER_QUERY_TIMEZONE=UTC disagrees with Looker's settings"):
        decide(measured(-5), expected="America/New_York", expected_how="user time zones off", declared="UTC",
               host="looker.example.org")


def test_a_new_reading_with_another_zone_stops_instead_of_switching() -> None:
    before = decide(measured(-5), expected="America/New_York", expected_how="off", declared=None, host="h")
    after = decide(measured(0), expected="America/New_York", expected_how="off", declared=None,
                   host="x.looker.com")
    refusal = changed(before, after, measured(0))
    assert refusal is not None and "America/New_York" in str(refusal) and "mid-stream" in str(refusal)
    assert changed(before, before, measured(-5)) is None


def test_looker_hosted_hosts() -> None:
    assert is_looker_hosted("acme.looker.com") and is_looker_hosted("acme.cloud.looker.com:19999")
    assert is_looker_hosted("1a2b.looker.app")
    assert not is_looker_hosted("looker.acme.com") and not is_looker_hosted("127.0.0.1:8080")
    assert not is_looker_hosted("notlooker.app")


def test_rows_in_another_dst_period_than_the_measurement_are_found_one_per_period() -> None:
    zones = ("America/New_York",)
    rows = [FALL_BACK - timedelta(minutes=m) for m in (50, 10)] + [FALL_BACK + timedelta(minutes=m)
                                                                   for m in (5, 40)]
    assert uncovered(zones, FALL_BACK + timedelta(hours=1), rows) == [FALL_BACK - timedelta(minutes=10)]
    assert uncovered(zones, FALL_BACK - timedelta(hours=1), rows) == [FALL_BACK + timedelta(minutes=40)]
    assert uncovered(("UTC",), FALL_BACK, rows) == []
    both = ("America/New_York", "Europe/Berlin")
    spread = [BERLIN_FALL_BACK - timedelta(hours=1), BERLIN_FALL_BACK + timedelta(hours=1), FALL_BACK]
    assert uncovered(both, FALL_BACK + timedelta(hours=1), spread) == spread[:2]


def test_a_dst_period_ends_at_the_change_to_the_minute() -> None:
    start, end = same_period_span(("America/New_York",), FALL_BACK - timedelta(days=3))
    assert FALL_BACK - timedelta(minutes=1) <= end < FALL_BACK
    assert datetime(2026, 3, 8, 7, tzinfo=UTC) <= start <= datetime(2026, 3, 8, 7, 1, tzinfo=UTC)

"""The cursor: in Cloud Storage (the generation is the precondition), proven against both GCS servers of
conftest.GCS_SERVERS with the real google-cloud-storage client over HTTP; and in a local file (local runs),
with the same guarantees and a lock file as precondition."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import BUCKET, GCS_SERVERS, PROJECT, Stack

from looker_audit_export.export.summary import ExportError
from looker_audit_export.state import Cursor, FileStateStore, Position, StateConflict, StateStore, state_store

if TYPE_CHECKING:
    from fake_gcs import FakeGcsServer

    from emulators.gcs import GcsEmulator

CURSOR = "looker/state.json"
GCS_URI = f"gs://{BUCKET}/{CURSOR}"
RACERS = 5


def gcs_store() -> StateStore:
    """A new store with its own storage client, as a new function instance builds it (STORAGE_EMULATOR_HOST)."""
    return state_store(GCS_URI, PROJECT, emulator=True, retry_initial_seconds=0.05)


# --------------------------------------------------------------------------- GCS


def test_the_gcs_cursor_is_written_only_over_the_version_it_read(gcs: GcsEmulator | FakeGcsServer) -> None:
    store = gcs_store()
    assert store.load() == (None, 0)
    first = store.save(b'{"v": 1}', 0)
    with pytest.raises(StateConflict, match="Another run moved the cursor"):
        store.save(b'{"v": "a second first writer"}', 0)  # 0: only if no cursor exists yet
    second = store.save(b'{"v": 2}', first)
    assert second != first
    with pytest.raises(StateConflict, match="Another run moved the cursor"):
        store.save(b'{"v": "stale"}', first)  # a run that read the first version
    assert store.load() == (b'{"v": 2}', second)
    assert gcs.object_bytes(BUCKET, CURSOR) == b'{"v": 2}'


def race(token: int, round_: int) -> dict[int, int | str]:
    """RACERS runs, each with its own client, save over version ``token`` at once: {racer: generation or error}."""
    barrier = threading.Barrier(RACERS)
    outcomes: dict[int, int | str] = {}

    def save(racer: int) -> None:
        store = gcs_store()
        body = json.dumps({"round": round_, "racer": racer}).encode()
        barrier.wait()
        try:
            outcomes[racer] = store.save(body, token)
        except StateConflict:
            outcomes[racer] = "refused"
        except Exception as exc:  # reported by the caller's assertion
            outcomes[racer] = repr(exc)

    threads = [threading.Thread(target=save, args=(racer,)) for racer in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_five_racing_saves_from_one_version_one_wins(gcs: GcsEmulator | FakeGcsServer) -> None:
    """Five runs that read the same version commit at the same moment: one is stored, four are refused.

    Three rounds: from no object (generation 0), then twice from the version the previous winner stored.
    """
    token = 0
    for round_ in range(3):
        outcomes = race(token, round_)
        winners = {racer: outcome for racer, outcome in outcomes.items() if isinstance(outcome, int)}
        assert list(outcomes.values()).count("refused") == RACERS - 1, outcomes
        assert len(winners) == 1, outcomes
        [(winner, generation)] = winners.items()
        assert gcs_store().load() == (json.dumps({"round": round_, "racer": winner}).encode(), generation)
        token = generation


@pytest.mark.parametrize("gcs_server", GCS_SERVERS)
def test_a_gcs_cursor_carries_the_export_from_run_to_run(stack: Stack, gcs_server: str) -> None:
    visible = stack.visible_ids()
    stack.data.hide_after(visible[999])
    stack.run()
    assert stack.cursor_id() == visible[999]
    stack.data.reveal_all()
    stack.run()
    assert stack.cursor_id() == visible[-1]
    assert sorted(stack.exported_ids()) == visible  # each event stored once: a re-sent one would repeat


@pytest.mark.parametrize("gcs_server", GCS_SERVERS)
def test_a_run_whose_cursor_another_run_moved_stores_nothing_over_it(stack: Stack, gcs_server: str) -> None:
    host = stack.env["LOOKER_BASE_URL"].split("//")[1].rstrip("/")
    other = json.dumps({"version": 1, "looker_host": host, "streams": {}}).encode()
    pages: list[str] = []

    def another_run_commits(stream: str, *_: object) -> None:
        pages.append(stream)
        if len(pages) == 1:  # after this run read its first page: the next cursor write must fail
            stack.gcs.corrupt(BUCKET, CURSOR, other)

    with pytest.raises(ExportError, match=f"Another run moved the cursor at {GCS_URI}"):
        stack.exporter(PAGE_SIZE="500").run(on_page=another_run_commits)
    assert stack.gcs.object_bytes(BUCKET, CURSOR) == other


@pytest.mark.parametrize("gcs_server", GCS_SERVERS)
def test_a_corrupt_gcs_cursor_stops_the_run_and_says_how_to_recover(stack: Stack, gcs_server: str) -> None:
    stack.gcs.corrupt(BUCKET, CURSOR, b'{"version": 1, "streams": {"events": {"last_id": "twelve"}}}')
    with pytest.raises(ExportError, match=rf"{GCS_URI} is unreadable .* delete it to restart"):
        stack.run()
    assert stack.logging.stats()["write_calls"] == 0


# --------------------------------------------------------------------------- local file


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_a_local_cursor_carries_the_export_from_run_to_run(stack: Stack, tmp_path: Path, scheme: str) -> None:
    path = tmp_path / "nested" / "state.json"
    visible = stack.visible_ids()
    stack.data.hide_after(visible[999])
    stack.run(STATE_URI=f"{scheme}{path}")
    assert json.loads(path.read_text())["streams"]["events"]["last_id"] == visible[999]
    stack.data.reveal_all()
    stack.run(STATE_URI=f"{scheme}{path}")
    assert sorted(stack.exported_ids()) == visible
    assert stack.logging.stats()["duplicates_stored"] == 0


def test_the_local_cursor_refuses_a_writer_that_read_an_older_version(tmp_path: Path) -> None:
    store = FileStateStore(str(tmp_path / "state.json"))
    cursor = Cursor("example.looker.com", {"events": Position(5)})
    first = store.save(cursor.to_json(), 0)
    store.save(cursor.to_json(), first)
    with pytest.raises(StateConflict, match="Another run moved the cursor"):
        store.save(cursor.to_json(), first)  # a second run that read the first version


def test_a_held_lock_stops_a_second_writer_and_a_stale_one_is_broken(tmp_path: Path) -> None:
    store = FileStateStore(str(tmp_path / "state.json"))
    store.lock.touch()
    with pytest.raises(StateConflict, match="holds"):
        store.save(Cursor("h").to_json(), 0)
    old = time.time() - 600
    os.utime(store.lock, (old, old))  # left behind by a killed run
    assert store.save(Cursor("h").to_json(), 0) == 1


def test_a_corrupt_local_cursor_stops_the_run_and_says_how_to_recover(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "streams": {"events": {"last_id": "twelve"}}}')
    with pytest.raises(ExportError, match=r"unreadable .* delete it to restart"):
        stack.run(STATE_URI=str(path))
    assert stack.logging.stats()["write_calls"] == 0

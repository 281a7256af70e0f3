"""The cursor in a local file (local runs): the same guarantees as in GCS, with a lock file as precondition."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import Stack

from looker_audit_export.pipeline import ExportError
from looker_audit_export.state import Cursor, FileStateStore, Position, StateConflict


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

"""The export cursor: a small JSON object in GCS (or a local file), written with a precondition."""

from __future__ import annotations

import errno
import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]

from .errors import NeedsFix

_STALE_LOCK_SECONDS = 120
_STORAGE_TIMEOUT_SECONDS = 30
_STORAGE_RETRY_SECONDS = 60.0


class StateError(RuntimeError):
    """The cursor cannot be read or stored; the message says what to fix."""


class StateConflict(StateError):
    """Another run moved the cursor since this run read it."""


class StateUnwritable(StateError, NeedsFix):
    """The cursor cannot be stored until someone fixes the store (read-only, permission, missing bucket)."""

    def __init__(self, what: str, cause: str, fix: str, *, before_sending: bool = False) -> None:
        super().__init__(f"{what}: {cause}; fix: {fix}" + (f". {NOTHING_SENT}" if before_sending else ""))
        self.cause, self.fix = f"{what}: {cause}", fix


#: Said after every StateUnwritable: why a run stops before sending anything.
NOTHING_SENT = ("Nothing is sent to Cloud Logging until the cursor can be saved: entries sent without a cursor "
                "behind them would be sent, stored and billed again by every later run")
_PERMISSION = re.compile(r"Permission '([a-z.]+)' denied")


@dataclass
class Position:
    """Where one stream stands: the last exported id, or the time before which all was read.

    ``sent_through``: the highest id a run had sent to Cloud Logging when it last stored the cursor, if
    beyond ``last_id``; a later run that sends those ids again counts them in ``entries_resent``.
    """

    last_id: int | None = None
    not_before: str | None = None
    sent_through: int | None = None


@dataclass
class Cursor:
    """The positions of every stream of one Looker host, stored as one JSON object."""

    looker_host: str
    positions: dict[str, Position] = field(default_factory=dict)
    updated_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def position(self, stream: str) -> Position:
        """The stream's position (a new, empty one for a stream never exported)."""
        return self.positions.setdefault(stream, Position())

    def to_json(self) -> bytes:
        streams = {name: asdict(position) for name, position in sorted(self.positions.items())}
        data = {**self.extra, "version": 1, "looker_host": self.looker_host, "streams": streams,
                "updated_at": self.updated_at}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str, looker_host: str) -> Cursor:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("version") != 1:
                raise ValueError("not a version 1 cursor object")
            streams = raw.get("streams", {})
            if not isinstance(streams, dict):
                raise ValueError("streams is not an object")
            positions = {str(name): _position(name, value) for name, value in streams.items()}
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(
                f"The cursor at {where} is unreadable ({exc}). Fix it, or delete it to restart from "
                "INITIAL_LOOKBACK_MINUTES ago (events before that would not be exported)"
            ) from None
        host = raw.get("looker_host")
        if host != looker_host:
            raise StateError(f"The cursor at {where} belongs to Looker host {host!r}, not {looker_host!r}: "
                             "give each Looker instance its own STATE_URI")
        known = {"version", "generation", "looker_host", "streams", "updated_at"}
        return cls(host, positions, raw.get("updated_at"), {k: v for k, v in raw.items() if k not in known})


def _position(name: str, value: Any) -> Position:
    if not isinstance(value, dict):
        raise ValueError(f"stream {name!r} is not an object")
    last, not_before, sent = value.get("last_id"), value.get("not_before"), value.get("sent_through")
    for key, number in (("last_id", last), ("sent_through", sent)):
        if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 0):
            raise ValueError(f"{name}.{key} is not a whole number")
    if not_before is not None and not isinstance(not_before, str):
        raise ValueError(f"{name}.not_before is not a string")
    return Position(last, not_before, sent)


class StateStore(Protocol):
    """Reads the cursor with a version token and writes it only if the token still matches."""

    uri: str
    #: Least time between two writes of the cursor (seconds); the exporter waits rather than write sooner.
    min_save_interval: float
    #: Whether a save stores the cursor where a later run finds it (not so in memory: a dry run).
    persistent: bool

    def load(self, *, deadline: float | None = None) -> tuple[bytes | None, int]:
        """The stored bytes (None when there are none yet) and their version token.

        Transient failures are retried until ``deadline`` (a ``time.monotonic()`` value) at the latest.
        """

    def save(self, data: bytes, token: int, *, deadline: float | None = None) -> int:
        """Store ``data`` if the version is still ``token``; return the new token or raise StateConflict."""

    def probe(self, *, deadline: float | None = None) -> None:
        """Prove that a save could succeed now (the cursor itself unchanged); raise StateUnwritable naming the cause."""


class GcsStateStore:
    """Cursor in a GCS object; the object generation is the precondition.

    Cloud Storage allows one write per second to the same object name
    (https://cloud.google.com/storage/quotas: "Maximum rate of writes to the same object name"), so the
    exporter writes the cursor at most once a second.
    """

    min_save_interval = 1.0
    persistent = True

    def __init__(self, uri: str, client: storage.Client, *, retry_initial_seconds: float = 1.0) -> None:
        self.uri = uri
        self.retry_initial_seconds = retry_initial_seconds
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        self.blob_name = name
        self.bucket = client.bucket(bucket)

    def _retry(self, deadline: float | None) -> Any:
        """The client's default retry (transient errors, jittered backoff), ending by ``deadline``."""
        budget = _STORAGE_RETRY_SECONDS if deadline is None else max(0.0, deadline - time.monotonic() - 1)
        return storage.retry.DEFAULT_RETRY.with_timeout(min(_STORAGE_RETRY_SECONDS, budget)).with_delay(
            initial=self.retry_initial_seconds)

    def load(self, *, deadline: float | None = None) -> tuple[bytes | None, int]:
        retry = self._retry(deadline)
        try:
            blob = self.bucket.get_blob(self.blob_name, timeout=_STORAGE_TIMEOUT_SECONDS, retry=retry)
            if blob is None:
                return None, 0
            generation = int(blob.generation or 0)
            data = blob.download_as_bytes(if_generation_match=generation, timeout=_STORAGE_TIMEOUT_SECONDS,
                                          retry=retry)
        except gexc.PreconditionFailed:
            raise StateConflict(f"The cursor at {self.uri} changed while it was read") from None
        except gexc.Forbidden as exc:
            raise StateUnwritable(f"The cursor at {self.uri} cannot be read", self._cause(exc),
                                  self._fix(exc), before_sending=True) from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StateError(f"The cursor at {self.uri} could not be read: {_describe(exc)}") from None
        return data, generation

    def save(self, data: bytes, token: int, *, deadline: float | None = None) -> int:
        blob = self.bucket.blob(self.blob_name)
        try:
            blob.upload_from_string(data, content_type="application/json", if_generation_match=token,
                                    timeout=_STORAGE_TIMEOUT_SECONDS, retry=self._retry(deadline))
        except gexc.PreconditionFailed:
            raise StateConflict(f"Another run moved the cursor at {self.uri}; this run's cursor was not "
                                "stored (its entries were written: the next run sends them again)") from None
        except (gexc.Forbidden, gexc.NotFound) as exc:
            raise StateUnwritable(f"The cursor at {self.uri} cannot be saved", self._cause(exc),
                                  self._fix(exc)) from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StateError(f"The cursor at {self.uri} could not be written: {_describe(exc)}") from None
        return int(blob.generation or token + 1)

    def probe(self, *, deadline: float | None = None) -> None:
        """Prove that the cursor can be saved: write ``.probe-<cursor name>`` beside it, a few bytes.

        The same object is replaced by every run, which needs what replacing the cursor needs:
        ``storage.objects.create`` and ``storage.objects.delete``
        (https://cloud.google.com/storage/docs/access-control/iam-json); one write per run, none of them a
        second write to an object within the second GCS allows. Raise StateUnwritable with the cause.
        """
        retry = self._retry(deadline)
        try:
            self.bucket.blob(self.probe_name).upload_from_string(
                _PROBE_BODY, content_type="application/json", timeout=_STORAGE_TIMEOUT_SECONDS, retry=retry)
        except (gexc.Forbidden, gexc.NotFound) as exc:
            raise StateUnwritable(f"The cursor at {self.uri} cannot be saved", self._cause(exc), self._fix(exc),
                                  before_sending=True) from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StateError(f"The cursor at {self.uri} could not be checked before sending: {_describe(exc)}. "
                             f"{NOTHING_SENT}") from None

    @property
    def probe_name(self) -> str:
        """``looker/.probe-state.json`` for the cursor ``looker/state.json``."""
        folder, _, name = self.blob_name.rpartition("/")
        return f"{folder}/" * bool(folder) + f".probe-{name}"

    def _cause(self, exc: gexc.GoogleAPIError) -> str:
        if isinstance(exc, gexc.NotFound):
            return f"the bucket gs://{self.bucket.name} does not exist"
        permission = _PERMISSION.search(str(exc))
        return f"permission denied ({permission.group(1) if permission else 'HTTP 403'} on gs://{self.bucket.name})"

    def _fix(self, exc: gexc.GoogleAPIError) -> str:
        if isinstance(exc, gexc.NotFound):
            return ("create the bucket (terraform apply creates it and keeps it), or correct STATE_URI; an export "
                    "started on a new bucket starts over from INITIAL_LOOKBACK_MINUTES ago")
        return (f"grant the function's service account roles/storage.objectUser on gs://{self.bucket.name} "
                "(terraform apply grants it)")


class FileStateStore:
    """Cursor in a local file; a generation field and an exclusive lock file are the precondition."""

    min_save_interval = 0.0
    persistent = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.path = Path(uri.removeprefix("file://"))
        self.lock = self.path.with_name(self.path.name + ".lock")

    def load(self, *, deadline: float | None = None) -> tuple[bytes | None, int]:
        try:
            stored = self.path.read_bytes()
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise StateError(f"The cursor at {self.uri} could not be read: {exc.strerror}") from None
        return stored, _generation(stored)

    def save(self, data: bytes, token: int, *, deadline: float | None = None) -> int:
        try:
            return self._save(data, token)
        except StateError:
            raise
        except OSError as exc:
            raise StateUnwritable(f"The cursor at {self.uri} cannot be saved", *_file_cause(exc, self.path)) from None

    def probe(self, *, deadline: float | None = None) -> None:
        """Prove that the cursor can be saved: create a file beside it (as a save's lock file), then remove it."""
        probe = self.path.with_name(f".{self.path.name}.probe-{uuid.uuid4().hex}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(_PROBE_BODY)
            probe.unlink()
        except OSError as exc:
            raise StateUnwritable(f"The cursor at {self.uri} cannot be saved", *_file_cause(exc, self.path),
                                  before_sending=True) from None

    def _save(self, data: bytes, token: int) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            current = _generation(self.path.read_bytes()) if self.path.exists() else 0
            if current != token:
                raise StateConflict(f"Another run moved the cursor at {self.uri}; this run's cursor was not stored")
            body = json.loads(data)
            body["generation"] = token + 1
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_bytes(json.dumps(body, sort_keys=True).encode())
            os.replace(temporary, self.path)
        finally:
            self.lock.unlink(missing_ok=True)
        return token + 1

    def _acquire(self) -> None:
        try:
            os.close(os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            if time.time() - self.lock.stat().st_mtime < _STALE_LOCK_SECONDS:
                raise StateConflict(f"Another run holds {self.lock}; this run's cursor was not stored") from None
            self.lock.unlink(missing_ok=True)  # left by a killed run
            self._acquire()


_PROBE_BODY = b'{"probe": "looker_audit_export: proves the cursor can be saved; safe to delete"}'


def _file_cause(exc: OSError, path: Path) -> tuple[str, str]:
    """Why a local cursor cannot be written, and the fix."""
    folder = path.parent
    if exc.errno == errno.EROFS:
        return (f"the folder {folder} is on a read-only file system",
                "mount it read-write, or point STATE_URI at a writable folder")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied in {folder}",
                "let the user running the exporter write there, or point STATE_URI at a folder it may write")
    if exc.errno in (errno.ENOTDIR, errno.ENOENT, errno.EEXIST):
        return (f"the folder {folder} cannot be created: part of the path is a file",
                "point STATE_URI at a file in a folder")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left for {path}", "free some space on that disk"
    return str(exc.strerror or exc), "point STATE_URI at a writable local folder"


def _generation(stored: bytes) -> int:
    try:
        value = json.loads(stored).get("generation", 1)
    except (ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) else 1


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{exc.__class__.__name__}: {' '.join(str(message).split())[:300]}"


class MemoryStateStore:
    """Cursor kept in memory only: for ``--dry-run`` and local trials without STATE_URI."""

    min_save_interval = 0.0
    persistent = False

    def __init__(self, data: bytes | None = None, uri: str = "memory://") -> None:
        self.uri = uri
        self.data = data

    def load(self, *, deadline: float | None = None) -> tuple[bytes | None, int]:
        return self.data, 0

    def save(self, data: bytes, token: int, *, deadline: float | None = None) -> int:
        self.data = data
        return token

    def probe(self, *, deadline: float | None = None) -> None:
        """Memory can always be written."""


def sibling_uri(state_uri: str, name: str) -> str:
    """The URI of object or file ``name`` in the same folder as the cursor at ``state_uri``."""
    directory = state_uri.rsplit("/", 1)[0] if "/" in state_uri else "."
    return f"{directory}/{name}"


def state_store(uri: str, project: str, *, emulator: bool, retry_initial_seconds: float = 1.0) -> StateStore:
    """The store for ``STATE_URI``: GCS for ``gs://``, else a local file."""
    if uri.startswith("gs://"):
        credentials = AnonymousCredentials() if emulator else None
        return GcsStateStore(uri, storage.Client(project=project, credentials=credentials),
                             retry_initial_seconds=retry_initial_seconds)
    return FileStateStore(uri)

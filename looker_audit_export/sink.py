"""Write serialised LogEntry protobufs to Cloud Logging in large batches; never drop one silently.

Knows the Cloud Logging API and how to mend a refused entry (``entries.repair``, given per call); knows
nothing of Looker, the streams or the cursor.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.services.logging_service_v2.transports import LoggingServiceV2GrpcTransport
from google.cloud.logging_v2.types import LogEntry, WriteLogEntriesPartialErrors, WriteLogEntriesRequest
from google.protobuf import json_format
from google.protobuf.message import Message

from .entries.repair import Repair
from .protowire import field, tag

log = logging.getLogger(__name__)

#: Cloud Logging refuses a WriteLogEntries request over 10 MB; stay clear of it.
MAX_REQUEST_BYTES = 9_500_000
_PER_ENTRY_OVERHEAD = 8
#: ``WriteLogEntriesRequest`` fields: the entries, each framed as field 4, and ``partial_success = true``.
_ENTRIES = tag(4)
_PARTIAL_SUCCESS = b"\x28\x01"
_CALL_TIMEOUT_SECONDS = 60.0
_PartialErrorsPb = WriteLogEntriesPartialErrors.pb()
_RequestPb = WriteLogEntriesRequest.pb()
LogEntryPb = LogEntry.pb()
_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
              gexc.ResourceExhausted, gexc.Aborted)


class SinkError(RuntimeError):
    """Cloud Logging did not accept entries; the message says why and what to fix."""


@dataclass
class WriteStats:
    """What a sink did for one run (each run passes its own, so overlapping runs count apart).

    ``resent`` counts entries sent again in a request retried after an error that does not rule out that
    Cloud Logging stored the first attempt (every transient error but RESOURCE_EXHAUSTED): those may be
    stored twice. RESOURCE_EXHAUSTED is the refusal of a request over quota
    (https://cloud.google.com/logging/quotas; ``google.rpc.Code``: "a per-user quota"), taken as storing
    nothing; if it ever did, ``resent`` would undercount, never the bound on re-sending.
    """

    entries_written: int = 0
    shrunk: int = 0
    placeholders: int = 0
    write_calls: int = 0
    bytes_sent: int = 0
    resent: int = 0


class Sink(Protocol):
    """Where mapped entries (serialised ``LogEntry`` messages) go."""

    def write(self, entries: Sequence[bytes], stats: WriteStats, *, deadline: float, repair: Repair) -> None:
        """Write every entry, counting into ``stats``, mending refused ones with ``repair``, or raise SinkError."""


def logging_client(emulator_host: str | None) -> LoggingServiceV2Client:
    """A Cloud Logging client: plain gRPC to an emulator, or Google's API with default credentials."""
    if emulator_host:
        options = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
        channel = grpc.insecure_channel(emulator_host, options=options)
        return LoggingServiceV2Client(transport=LoggingServiceV2GrpcTransport(channel=channel))
    return LoggingServiceV2Client()


def batches(entries: Sequence[bytes], max_entries: int, max_bytes: int = MAX_REQUEST_BYTES) -> list[list[bytes]]:
    """Split entries into requests of at most ``max_entries`` entries and ``max_bytes`` bytes."""
    result: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for entry in entries:
        entry_size = len(entry) + _PER_ENTRY_OVERHEAD
        if current and (len(current) >= max_entries or size + entry_size > max_bytes):
            result.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size
    if current:
        result.append(current)
    return result


class CloudLoggingSink:
    """``WriteLogEntries`` with ``partialSuccess``, bounded jittered retries, and repair of rejected entries."""

    def __init__(self, client: LoggingServiceV2Client, *, batch_entries: int = 1000,
                 retry_initial_seconds: float = 1.0) -> None:
        self.client = client
        self.batch_entries = batch_entries
        self.retry_initial_seconds = retry_initial_seconds

    def write(self, entries: Sequence[bytes], stats: WriteStats, *, deadline: float, repair: Repair) -> None:
        for batch in batches(entries, self.batch_entries):
            rejected = self._send(batch, deadline, stats)
            stats.entries_written += len(batch) - len(rejected)
            for index, reason in rejected.items():
                self._repair(LogEntryPb.FromString(batch[index]), reason, deadline, repair, stats)

    def _repair(self, entry: Message, reason: str, deadline: float, repair: Repair, stats: WriteStats) -> None:
        """Write a rejected entry shrunk, else as a placeholder; raise if even that is refused."""
        smaller = repair.shrink(entry)
        if smaller.ByteSize() < entry.ByteSize() and not self._send([smaller.SerializeToString()], deadline, stats):
            stats.shrunk += 1
            stats.entries_written += 1
            return
        stand_in = repair.placeholder(entry, reason)
        refusal = self._send([stand_in.SerializeToString()], deadline, stats)
        if refusal:
            # The placeholder keeps the entry's time; if that time is what Cloud Logging refuses (say, more
            # than a day ahead), nothing with it can be written: stand in at the time of writing instead.
            original = entry.timestamp.ToJsonString()  # type: ignore[attr-defined]
            moved = LogEntryPb()
            moved.CopyFrom(entry)
            moved.timestamp.FromSeconds(int(time.time()))  # type: ignore[attr-defined]
            stand_in = repair.placeholder(moved, f"{reason}; written at the export time because the placeholder at "
                                          f"the event's time {original} was refused too ({refusal[0]})")
            second = self._send([stand_in.SerializeToString()], deadline, stats)
            if second:
                raise SinkError(f"Cloud Logging refused entry {entry.insert_id} and its placeholders: "  # type: ignore[attr-defined]
                                f"{refusal[0]}; {second[0]}")
        log.warning("Entry %s was refused (%s); wrote a placeholder in its place",
                    entry.insert_id, reason)  # type: ignore[attr-defined]
        stats.placeholders += 1
        stats.entries_written += 1

    def _send(self, batch: list[bytes], deadline: float, stats: WriteStats) -> dict[int, str]:
        """One request; returns the entries Cloud Logging rejected, by index, with the reason."""
        data = b"".join([field(_ENTRIES, entry) for entry in batch]) + _PARTIAL_SUCCESS
        size = len(data)
        if len(batch) > 1 and size > MAX_REQUEST_BYTES:
            return self._send_halves(batch, deadline, stats)
        remaining = deadline - time.monotonic()
        if remaining <= 1:
            raise SinkError(f"time budget exhausted with {len(batch)} entries still to write")

        request = WriteLogEntriesRequest.wrap(_RequestPb.FromString(data))
        attempts: list[Exception | None] = []  # the error that led to each attempt (None for the first)

        def attempt() -> None:
            error = attempts[-1] if attempts else None
            attempts.append(None)
            stats.write_calls += 1
            stats.bytes_sent += size
            if error is not None and not isinstance(error, gexc.ResourceExhausted):  # a quota refusal stores nothing
                stats.resent += len(batch)  # the earlier attempt may have been stored: this one may store it twice
            self.client.write_log_entries(request=request, retry=None,
                                          timeout=max(0.1, min(_CALL_TIMEOUT_SECONDS, deadline - time.monotonic())))

        def failed(error: Exception) -> None:
            attempts[-1] = error

        retry = gretry.Retry(predicate=gretry.if_exception_type(*_TRANSIENT), initial=self.retry_initial_seconds,
                             maximum=30.0, multiplier=2.0, timeout=remaining, on_error=failed)
        try:
            retry(attempt)()
        except gexc.InvalidArgument as exc:
            errors = _partial_errors(exc)
            if errors:
                return errors
            if len(batch) == 1:
                return {0: exc.message or "INVALID_ARGUMENT"}
            # No per-entry errors: nothing was written (every entry invalid, or the request too large).
            # Halve the batch until the invalid entries stand alone, so they cannot block the rest.
            log.info("Cloud Logging rejected a request of %d entries (%s); sending it in halves",
                     len(batch), exc.message)
            return self._send_halves(batch, deadline, stats)
        except gexc.PermissionDenied as exc:
            raise SinkError(f"Cloud Logging denied the write ({exc.message}): grant the function's service "
                            "account roles/logging.logWriter on the project") from None
        except _TRANSIENT as exc:
            raise SinkError(_gave_up(exc)) from None
        except gexc.RetryError as exc:
            raise SinkError(_gave_up(exc.cause)) from None
        except gexc.GoogleAPICallError as exc:
            raise SinkError(f"Cloud Logging refused the write: {exc.code} {exc.message}") from None
        return {}


    def _send_halves(self, batch: list[bytes], deadline: float, stats: WriteStats) -> dict[int, str]:
        """``_send`` each half of the batch; the rejected entries by their index in the whole batch."""
        half = len(batch) // 2
        first = self._send(batch[:half], deadline, stats)
        second = self._send(batch[half:], deadline, stats)
        return {**first, **{index + half: reason for index, reason in second.items()}}


def _gave_up(cause: Exception | None) -> str:
    """What to say when transient errors outlasted the retries: the last error, and what to check."""
    last = f"{cause.__class__.__name__}: {getattr(cause, 'message', None) or cause}" if cause else "no answer"
    hint = ("the project's Cloud Logging write quota is exhausted: the next run continues from the cursor; "
            "if it persists, raise the Cloud Logging API's write quota for the project"
            if isinstance(cause, gexc.ResourceExhausted) else
            "Cloud Logging was unavailable: the next run continues from the cursor")
    return f"Cloud Logging kept failing until the time budget ran out ({last}); {hint}"


def _partial_errors(exc: gexc.GoogleAPICallError) -> dict[int, str]:
    """Per-entry errors from a partialSuccess INVALID_ARGUMENT, by entry index."""
    for detail in exc.details or ():
        if hasattr(detail, "Is") and detail.Is(_PartialErrorsPb.DESCRIPTOR):
            errors = _PartialErrorsPb()
            detail.Unpack(errors)
            return {index: status.message or f"code {status.code}" for index, status in
                    errors.log_entry_errors.items()}
    return {}


class JsonLinesSink:
    """``--dry-run``: print each entry as one JSON line instead of writing it."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def write(self, entries: Sequence[bytes], stats: WriteStats, *, deadline: float, repair: Repair) -> None:
        for entry in entries:
            self.out.write(json_format.MessageToJson(LogEntryPb.FromString(entry), indent=None) + "\n")
            stats.entries_written += 1
        self.out.flush()

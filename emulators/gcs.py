"""Cloud Storage emulator: the subset of the JSON API the exporter's cursor uses.

Point the real client at it with ``STORAGE_EMULATOR_HOST=<base_url>``; with
that variable set, ``google.cloud.storage.Client`` needs no credentials.
Supported: bucket get/insert, object metadata get (``alt=json``), media
download (``alt=media``, also under ``/download``), simple and multipart
uploads (``/upload``, ``uploadType=media|multipart``; resumable uploads are
refused) and delete.  Preconditions ``ifGenerationMatch`` (``0``: must not
exist), ``ifGenerationNotMatch``, ``ifMetagenerationMatch`` and
``ifMetagenerationNotMatch`` answer 412 ``conditionNotMet`` (304 on reads for
the *NotMatch* ones) like GCS.  A write to an object less than a second after
its last one is answered 429 ``rateLimitExceeded`` (GCS allows one write per
second per object name).  Buckets are unversioned: only the live generation
exists.  Generations are microsecond timestamps, strictly increasing, as on
GCS.  ``GET /_emulator/stats`` returns counters.

The cursor tests also run against fake-gcs-server (tests/fake_gcs.py, tests/test_state.py); this emulator
is kept for what fake-gcs-server (v1.54.0, as pinned) lacks: injected faults (``inject``: 429/5xx for the
client's retries, 503 until cleared for a backend outage, 403 for a missing grant), the one-write-per-second
limit per object, counters (requests, precondition failures, rate-limited writes), and preconditions on
every call: fake-gcs-server honours ``ifGenerationMatch`` on multipart uploads (the client's path for the
cursor) but ignores it on media uploads, reads and deletes.

Permissions follow https://cloud.google.com/storage/docs/access-control/iam-json: reading an object (metadata
or media) needs ``storage.objects.get``, an upload ``storage.objects.create`` and, when it replaces an existing
object, ``storage.objects.delete`` too; a delete ``storage.objects.delete``; a bucket get
``storage.buckets.get``. ``revoke`` takes permissions away on one bucket (a grant removed, or narrowed to
``roles/storage.objectViewer``): the request is answered 403 with GCS's text, checked before the object is
looked up ("denied on resource (or it may not exist)"). ``delete_bucket`` removes a bucket with its objects, as
``gcloud storage rm --recursive gs://BUCKET`` does: every later request on it is answered 404.
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import google_crc32c

from emulators._lifecycle import HttpServed, QuietHandler

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}
_PRECONDITION_MESSAGE = "At least one of the pre-conditions you specified did not hold."


class HttpError(Exception):
    """An error answered as a GCS JSON error body."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or _REASONS.get(status, "invalid")

    def body(self) -> bytes:
        error: dict[str, Any] = {"message": self.message, "domain": "global", "reason": self.reason}
        if self.status == 412:
            error |= {"locationType": "header", "location": "If-Match"}
        payload = {"error": {"code": self.status, "message": self.message, "errors": [error]}}
        return json.dumps(payload).encode()


@dataclass
class _Object:
    data: bytes
    generation: int
    content_type: str
    metadata: dict[str, str]
    created: str
    metageneration: int = 1


@dataclass
class _Bucket:
    created: str
    objects: dict[str, _Object] = field(default_factory=dict)
    #: Permissions the caller no longer has on this bucket and its objects (``revoke``).
    revoked: set[str] = field(default_factory=set)


#: The object-level permissions (https://cloud.google.com/storage/docs/access-control/iam-permissions) of
#: ``roles/storage.objectUser``, the role Terraform grants the function on the cursor's bucket.
OBJECT_PERMISSIONS = ("storage.objects.get", "storage.objects.create", "storage.objects.delete")


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _crc32c(data: bytes) -> str:
    return _b64(google_crc32c.value(data).to_bytes(4, "big"))


def _md5(data: bytes) -> str:
    return _b64(hashlib.md5(data).digest())


class GcsEmulator(HttpServed):
    """In-process GCS JSON API over HTTP.

    ``extra_stats`` adds sections to ``GET /_emulator/stats`` (used by
    ``python -m emulators`` to publish every emulator's counters).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        extra_stats: Callable[[], Mapping[str, Any]] | None = None,
        object_write_interval: float = 1.0,
    ) -> None:
        self._host = host
        #: Cloud Storage allows one write per second to the same object name
        #: (https://cloud.google.com/storage/quotas); a create, update or delete of an object sooner than this
        #: after its last one is answered 429 ``rateLimitExceeded``, as GCS may.
        self.object_write_interval = object_write_interval
        self._last_write: dict[tuple[str, str], float] = {}
        self._port = port
        self._extra_stats = extra_stats
        #: Who GCS names in a 403 (the client sends no credentials to an emulator).
        self.caller = "Anonymous caller"
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._last_generation = 0
        self._faults: list[list[int]] = []  # [status, remaining (-1: forever)]
        self._stats = dict.fromkeys(
            (
                "requests",
                "uploads",
                "downloads",
                "metadata_reads",
                "deletes",
                "precondition_failures",
                "injected_faults",
                "rate_limited",
            ),
            0,
        )

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> str:
        """Start serving; return the base URL for ``STORAGE_EMULATOR_HOST``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._port = server.server_address[1]
        self._serve(server, "gcs-emulator")
        return self.base_url

    @property
    def base_url(self) -> str:
        """``http://host:port`` (the port is known after start())."""
        return f"http://{self._host}:{self._port}"


    # -- test hooks -----------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        """Create an empty bucket (no-op if it exists)."""
        if not _BUCKET_NAME.fullmatch(name):
            raise ValueError(f"invalid bucket name: {name!r}")
        with self._lock:
            self._buckets.setdefault(name, _Bucket(_now_rfc3339()))

    def corrupt(self, bucket: str, name: str, data: bytes) -> int:
        """Overwrite (or create) an object with arbitrary bytes; return its generation."""
        with self._lock:
            old = self._bucket(bucket).objects.get(name)
            content_type = old.content_type if old else "application/octet-stream"
            self._last_write[(bucket, name)] = time.monotonic()  # a write like any other: the rate limit counts it
            return self._put(bucket, name, data, content_type, {}).generation

    def revoke(self, bucket: str, *permissions: str) -> None:
        """Take ``permissions`` (default: every object permission of roles/storage.objectUser) away on ``bucket``."""
        with self._lock:
            self._bucket(bucket).revoked.update(permissions or OBJECT_PERMISSIONS)

    def grant(self, bucket: str) -> None:
        """Give back every permission revoked on ``bucket``."""
        with self._lock:
            self._bucket(bucket).revoked.clear()

    def delete_bucket(self, name: str) -> None:
        """Remove a bucket and its objects (``gcloud storage rm --recursive gs://NAME``)."""
        with self._lock:
            self._buckets.pop(name, None)

    def object_names(self, bucket: str) -> list[str]:
        """Names of the objects in a bucket, sorted."""
        with self._lock:
            return sorted(self._bucket(bucket).objects)

    def object_bytes(self, bucket: str, name: str) -> bytes | None:
        """Current content of an object, or None."""
        with self._lock:
            obj = self._bucket(bucket).objects.get(name)
            return None if obj is None else obj.data

    def inject(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` object requests with ``status`` (-1: until cleared).

        Bucket requests are never faulted: the client fetches bucket metadata
        from a background thread, which would race with the test.
        """
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._lock:
            self._faults.append([status, times])

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def stats(self) -> dict[str, int]:
        """Counters: requests, uploads, downloads, metadata_reads, deletes,
        precondition_failures, injected_faults."""
        with self._lock:
            return dict(self._stats)

    # -- storage (callers hold the lock) ------------------------------------------

    def _bucket(self, name: str) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise HttpError(404, "The specified bucket does not exist.")
        return bucket

    def _require(self, bucket: str, permission: str, *, on: str = "object") -> None:
        """Answer 403 as GCS does when the caller lacks ``permission`` on ``bucket`` (or 404: no bucket)."""
        if permission in self._bucket(bucket).revoked:
            raise HttpError(403, f"{self.caller} does not have {permission} access to the Google Cloud Storage "
                                 f"{on}. Permission '{permission}' denied on resource (or it may not exist).")

    def _mutation(self, bucket: str, name: str) -> None:
        """Refuse a write to ``name`` sooner than ``object_write_interval`` after its last one; else note it."""
        now = time.monotonic()
        last = self._last_write.get((bucket, name))
        if last is not None and now - last < self.object_write_interval:
            self._stats["rate_limited"] += 1
            raise HttpError(429, "The object exceeded the rate limit for object mutation operations (create, "
                                 "update, and delete). Please reduce your request rate.")
        self._last_write[(bucket, name)] = now

    def _put(self, bucket: str, name: str, data: bytes, content_type: str, metadata: dict[str, str]) -> _Object:
        generation = max(time.time_ns() // 1000, self._last_generation + 1)
        self._last_generation = generation
        obj = _Object(data, generation, content_type, metadata, _now_rfc3339())
        self._bucket(bucket).objects[name] = obj
        return obj

    def _take_fault(self) -> int | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault[1] > 0:
                fault[1] -= 1
                if fault[1] == 0:
                    self._faults.pop(0)
            self._stats["injected_faults"] += 1
            return fault[0]

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _object_resource(self, bucket: str, name: str, obj: _Object) -> dict[str, Any]:
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        resource: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{obj.generation}",
            "selfLink": self.base_url + path,
            "mediaLink": f"{self.base_url}/download{path}?generation={obj.generation}&alt=media",
            "name": name,
            "bucket": bucket,
            "generation": str(obj.generation),
            "metageneration": str(obj.metageneration),
            "contentType": obj.content_type,
            "storageClass": "STANDARD",
            "size": str(len(obj.data)),
            "md5Hash": _md5(obj.data),
            "crc32c": _crc32c(obj.data),
            "etag": _b64(f"{obj.generation}/{obj.metageneration}".encode()),
            "timeCreated": obj.created,
            "updated": obj.created,
            "timeStorageClassUpdated": obj.created,
        }
        if obj.metadata:
            resource["metadata"] = obj.metadata
        return resource

    def _bucket_resource(self, name: str, bucket: _Bucket) -> dict[str, Any]:
        return {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "selfLink": f"{self.base_url}/storage/v1/b/{quote(name, safe='')}",
            "metageneration": "1",
            "location": "US",
            "storageClass": "STANDARD",
            "etag": "CAE=",
            "timeCreated": bucket.created,
            "updated": bucket.created,
        }

    def _live(self, bucket: str, name: str, query: Mapping[str, str]) -> _Object:
        """The object (the requested generation, if any) or a 404."""
        obj = self._bucket(bucket).objects.get(name)
        if obj is None or ("generation" in query and _int(query, "generation") != obj.generation):
            raise HttpError(404, f"No such object: {bucket}/{name}")
        return obj

    def _check_preconditions(self, query: Mapping[str, str], obj: _Object | None, *, read: bool) -> None:
        generation = obj.generation if obj else 0
        failed = ("ifGenerationMatch" in query and _int(query, "ifGenerationMatch") != generation) or (
            "ifMetagenerationMatch" in query
            and (obj is None or _int(query, "ifMetagenerationMatch") != obj.metageneration)
        )
        not_modified = ("ifGenerationNotMatch" in query and _int(query, "ifGenerationNotMatch") == generation) or (
            "ifMetagenerationNotMatch" in query
            and obj is not None
            and _int(query, "ifMetagenerationNotMatch") == obj.metageneration
        )
        if failed or (not_modified and not read):
            self._stats["precondition_failures"] += 1
            raise HttpError(412, _PRECONDITION_MESSAGE)
        if not_modified:
            raise HttpError(304, "Not Modified")

    # -- request handling ------------------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route one request (``headers`` keys in lower case); return (status, headers, body)."""
        split = urlsplit(raw_path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        parts = [unquote(part) for part in split.path.split("/")[1:]]
        if method == "GET" and parts == ["_emulator", "stats"]:
            stats: dict[str, Any] = {"gcs": self.stats()}
            if self._extra_stats is not None:
                stats |= self._extra_stats()
            return _json(200, stats)
        self._count("requests")
        prefix = parts[:3]
        if prefix in (["upload", "storage", "v1"], ["download", "storage", "v1"]):
            kind, parts = prefix[0], parts[3:]
        elif parts[:2] == ["storage", "v1"]:
            kind, parts = "api", parts[2:]
        else:
            raise HttpError(404, "Not Found")
        if parts[2:3] == ["o"] and (fault := self._take_fault()) is not None:
            raise HttpError(fault, http.HTTPStatus(fault).phrase)
        with self._lock:
            if kind == "upload" and method == "POST" and len(parts) == 3 and parts[::2] == ["b", "o"]:
                return self._upload(parts[1], query, headers, body)
            if kind != "upload" and len(parts) == 4 and parts[::2] == ["b", "o"]:
                if method == "GET":
                    return self._get_object(parts[1], parts[3], query, media=kind == "download")
                if method == "DELETE" and kind == "api":
                    return self._delete(parts[1], parts[3], query)
            if kind == "api" and parts == ["b"] and method == "POST":
                return self._insert_bucket(body)
            if kind == "api" and len(parts) == 2 and parts[0] == "b" and method == "GET":
                self._require(parts[1], "storage.buckets.get", on="bucket")
                return _json(200, self._bucket_resource(parts[1], self._bucket(parts[1])))
        raise HttpError(404, "Not Found")

    def _get_object(
        self, bucket: str, name: str, query: Mapping[str, str], *, media: bool
    ) -> tuple[int, dict[str, str], bytes]:
        self._require(bucket, "storage.objects.get")
        obj = self._live(bucket, name, query)
        self._check_preconditions(query, obj, read=True)
        if not (media or query.get("alt") == "media"):
            self._stats["metadata_reads"] += 1
            return _json(200, self._object_resource(bucket, name, obj))
        self._stats["downloads"] += 1
        headers = {
            "Content-Type": obj.content_type,
            "ETag": _b64(f"{obj.generation}/{obj.metageneration}".encode()),
            "X-Goog-Generation": str(obj.generation),
            "X-Goog-Metageneration": str(obj.metageneration),
            "X-Goog-Hash": f"crc32c={_crc32c(obj.data)},md5={_md5(obj.data)}",
            "X-Goog-Stored-Content-Length": str(len(obj.data)),
            "X-Goog-Stored-Content-Encoding": "identity",
            "X-Goog-Storage-Class": "STANDARD",
        }
        return 200, headers, obj.data

    def _delete(self, bucket: str, name: str, query: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        self._require(bucket, "storage.objects.delete")
        obj = self._live(bucket, name, query)
        self._check_preconditions(query, obj, read=False)
        self._mutation(bucket, name)
        del self._buckets[bucket].objects[name]
        self._stats["deletes"] += 1
        return 204, {}, b""

    def _insert_bucket(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        name = _json_body(body).get("name")
        if not isinstance(name, str) or not _BUCKET_NAME.fullmatch(name):
            raise HttpError(400, "Invalid bucket name: " + repr(name))
        if name in self._buckets:
            raise HttpError(409, "Your previous request to create the named bucket succeeded and you already own it.")
        self._buckets[name] = bucket = _Bucket(_now_rfc3339())
        return _json(200, self._bucket_resource(name, bucket))

    def _upload(
        self, bucket: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        upload_type = query.get("uploadType")
        content_type = headers.get("content-type", "application/octet-stream")
        if upload_type == "media":
            metadata: dict[str, Any] = {}
            data = body
        elif upload_type == "multipart":
            metadata, data, media_type = _parse_multipart(content_type, body)
            content_type = metadata.get("contentType") or media_type
        else:
            raise HttpError(400, f"Unsupported uploadType: {upload_type!r} (emulator: media, multipart).")
        name = metadata.get("name") or query.get("name")
        if not name:
            raise HttpError(400, "Required", "required")
        if "crc32c" in metadata and metadata["crc32c"] != _crc32c(data):
            raise HttpError(
                400, f'Provided CRC32C "{metadata["crc32c"]}" doesn\'t match calculated CRC32C "{_crc32c(data)}".'
            )
        if "md5Hash" in metadata and metadata["md5Hash"] != _md5(data):
            raise HttpError(
                400, f'Provided MD5 hash "{metadata["md5Hash"]}" doesn\'t match calculated MD5 hash "{_md5(data)}".'
            )
        self._require(bucket, "storage.objects.create")
        existing = self._bucket(bucket).objects.get(name)
        if existing is not None:  # replacing an object also needs the delete permission
            self._require(bucket, "storage.objects.delete")
        self._check_preconditions(query, existing, read=False)
        self._mutation(bucket, name)
        custom = {str(k): str(v) for k, v in (metadata.get("metadata") or {}).items()}
        obj = self._put(bucket, name, data, content_type, custom)
        self._stats["uploads"] += 1
        return _json(200, self._object_resource(bucket, name, obj))


class _Handler(QuietHandler):
    emulator: GcsEmulator

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.emulator._handle(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        except HttpError as error:
            status, headers = error.status, {}
            payload = b"" if status == 304 else error.body()
            if status != 304:
                headers["Content-Type"] = "application/json; charset=UTF-8"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _int(query: Mapping[str, str], key: str) -> int:
    try:
        return int(query[key])
    except ValueError:
        raise HttpError(400, f"Invalid argument: {key}={query[key]!r}.") from None


def _json(status: int, payload: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(payload).encode()


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise HttpError(400, "Parse Error") from None
    if not isinstance(value, dict):
        raise HttpError(400, "Parse Error")
    return value


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes, str]:
    """Split a ``multipart/related`` upload into (metadata, media, media type)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or match is None:
        raise HttpError(400, "Bad multipart upload: expected multipart/related with a boundary.")
    segments = (b"\r\n" + body).split(b"\r\n--" + match[1].encode())
    parts = []
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            break
        head, sep, content = segment.partition(b"\r\n\r\n")
        if not sep:
            raise HttpError(400, "Bad multipart upload: part without headers.")
        part_type = re.search(rb"(?im)^content-type:\s*([^\r\n]+)", head)
        parts.append((part_type[1].decode() if part_type else "application/octet-stream", content))
    if len(parts) != 2:
        raise HttpError(400, "Bad multipart upload: expected a metadata part and a media part.")
    return _json_body(parts[0][1]), parts[1][1], parts[1][0]

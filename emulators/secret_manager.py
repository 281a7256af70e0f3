"""Secret Manager emulator: ``AccessSecretVersion`` of
``google.cloud.secretmanager.v1.SecretManagerService`` over real gRPC.

Like the real service, responses name the version with the project *number*
(see :func:`project_number`); requests may use the project ID or number.
Only global secrets exist (``projects/P/secrets/S``).  Access is checked
before existence, so a denied secret answers PERMISSION_DENIED even if absent.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from google.cloud.secretmanager_v1.types import (
    AccessSecretVersionRequest,
    AccessSecretVersionResponse,
)

from emulators._grpc import Abort, GrpcEmulator, unary

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
_RequestPb: Any = AccessSecretVersionRequest.pb()
_ResponsePb: Any = AccessSecretVersionResponse.pb()
_SECRET_NAME = re.compile(r"projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})")
_VERSION_NAME = re.compile(_SECRET_NAME.pattern + r"/versions/(latest|[1-9][0-9]*)")


def project_number(project: str) -> str:
    """The emulator's stable 12-digit project number for a project ID."""
    if project.isdigit():
        return project
    return str(100_000_000_000 + zlib.crc32(project.encode()) % 900_000_000_000)


@dataclass
class _Secret:
    versions: list[bytes] = field(default_factory=list)
    disabled: set[int] = field(default_factory=set)


class SecretManagerEmulator(GrpcEmulator):
    """In-process Secret Manager API serving ``AccessSecretVersion``.

    ``secrets`` maps ``projects/P/secrets/S`` to the data of version 1;
    ``denied`` lists secret names whose access is PERMISSION_DENIED.
    Injected faults (``inject``/``inject_delay``) apply to every access.
    """

    def __init__(
        self,
        secrets: Mapping[str, bytes] | None = None,
        *,
        denied: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            SERVICE,
            {"AccessSecretVersion": unary(self._access, _RequestPb, _ResponsePb)},
            host=host,
            port=port,
        )
        self._lock = threading.Lock()
        self._secrets: dict[tuple[str, str], _Secret] = {}
        self.denied = {self._key(name) for name in denied}
        self.access_calls = 0
        for name, data in (secrets or {}).items():
            self.add_version(name, data)

    @staticmethod
    def _key(secret_name: str) -> tuple[str, str]:
        match = _SECRET_NAME.fullmatch(secret_name)
        if match is None:
            raise ValueError(f"not a secret name: {secret_name!r}")
        return project_number(match[1]), match[2]

    def add_version(self, secret_name: str, data: bytes) -> int:
        """Add a version to ``projects/P/secrets/S`` (created if needed); return its number."""
        key = self._key(secret_name)
        with self._lock:
            secret = self._secrets.setdefault(key, _Secret())
            secret.versions.append(bytes(data))
            return len(secret.versions)

    def disable_version(self, secret_name: str, version: int) -> None:
        """Disable a version: accessing it (also as ``latest``) is FAILED_PRECONDITION."""
        with self._lock:
            secret = self._secrets[self._key(secret_name)]
            if not 1 <= version <= len(secret.versions):
                raise KeyError(version)
            secret.disabled.add(version)

    def deny(self, secret_name: str) -> None:
        """Make access to the secret PERMISSION_DENIED."""
        self.denied.add(self._key(secret_name))

    def stats(self) -> dict[str, int]:
        """Counters: access_calls."""
        return {"access_calls": self.access_calls}

    def _access(self, request: Any) -> Any:
        with self._lock:
            self.access_calls += 1
        fault = self._take_fault()
        if fault is not None:
            raise fault
        match = _VERSION_NAME.fullmatch(request.name)
        if match is None:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid resource field value in the request: name {request.name!r} must "
                "match projects/*/secrets/*/versions/*.",
            )
        number, secret_id, wanted = project_number(match[1]), match[2], match[3]
        secret_name = f"projects/{number}/secrets/{secret_id}"
        if (number, secret_id) in self.denied:
            raise Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'secretmanager.versions.access' denied for resource "
                f"'{request.name}' (or it may not exist).",
            )
        with self._lock:
            secret = self._secrets.get((number, secret_id))
            versions = list(secret.versions) if secret else []
            disabled = set(secret.disabled) if secret else set()
        if not versions:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"Secret [{secret_name}] not found or has no versions.",
            )
        version = len(versions) if wanted == "latest" else int(wanted)
        version_name = f"{secret_name}/versions/{version}"
        if version > len(versions):
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{version_name}] not found.")
        if version in disabled:
            raise Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{version_name}] is in DISABLED state.",
            )
        data = versions[version - 1]
        response = _ResponsePb(name=version_name)
        response.payload.data = data
        response.payload.data_crc32c = google_crc32c.value(data)
        return response

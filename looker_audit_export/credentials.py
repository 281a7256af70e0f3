"""Looker API credentials, read from one Secret Manager secret version."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.api_core import exceptions as gexc
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

PAYLOAD_SHAPE = '{"client_id": "...", "client_secret": "..."}'
_ACCESS_TIMEOUT_SECONDS = 30.0


class CredentialsError(RuntimeError):
    """The credentials secret cannot be used; the message says what to fix (never the value)."""


@dataclass(frozen=True)
class LookerCredentials:
    """A Looker API3 client id and secret. The secret never shows in repr or str."""

    client_id: str
    client_secret: str = field(repr=False)


def secret_manager_client(emulator_host: str | None) -> secretmanager_v1.SecretManagerServiceClient:
    """A Secret Manager client: plain gRPC to an emulator, or Google's API with default credentials."""
    if emulator_host:
        channel = grpc.insecure_channel(emulator_host)
        return secretmanager_v1.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
    return secretmanager_v1.SecretManagerServiceClient()


def parse_payload(secret_version: str, payload: bytes) -> LookerCredentials:
    """Parse the secret payload ``{"client_id": ..., "client_secret": ...}``."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CredentialsError(
            f"Secret {secret_version} does not hold JSON; its payload must be {PAYLOAD_SHAPE}"
        ) from None
    if not isinstance(data, dict):
        raise CredentialsError(f"Secret {secret_version} must hold a JSON object: {PAYLOAD_SHAPE}")
    missing = [key for key in ("client_id", "client_secret")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise CredentialsError(
            f"Secret {secret_version} has no {' or '.join(missing)}; its payload must be {PAYLOAD_SHAPE}"
        )
    return LookerCredentials(client_id=data["client_id"].strip(), client_secret=data["client_secret"].strip())


def fetch_credentials(client: secretmanager_v1.SecretManagerServiceClient, secret_version: str) -> LookerCredentials:
    """Access the secret version and parse it; raise CredentialsError with what to fix."""
    try:
        response = client.access_secret_version(name=secret_version, timeout=_ACCESS_TIMEOUT_SECONDS)
    except gexc.NotFound:
        raise CredentialsError(
            f"Secret version {secret_version} was not found: add one with "
            f"`gcloud secrets versions add SECRET --data-file=-` holding {PAYLOAD_SHAPE}"
        ) from None
    except gexc.PermissionDenied:
        raise CredentialsError(
            f"Permission denied on secret {secret_version}: grant the function's service account "
            "roles/secretmanager.secretAccessor on that secret"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise CredentialsError(f"Secret Manager failed for {secret_version}: {exc.code} {exc.message}") from None
    return parse_payload(secret_version, response.payload.data)


class CachedCredentials:
    """Fetches the credentials once per instance; ``forget`` makes the next call fetch them again."""

    def __init__(self, secret_version: str, emulator_host: str | None,
                 on_fetch: Callable[[LookerCredentials], None] = lambda _: None) -> None:
        self.secret_version = secret_version
        self.emulator_host = emulator_host
        self.on_fetch = on_fetch
        self.fetches = 0
        self._client: secretmanager_v1.SecretManagerServiceClient | None = None
        self._cached: LookerCredentials | None = None

    def __call__(self) -> LookerCredentials:
        if self._cached is None:
            if self._client is None:
                self._client = secret_manager_client(self.emulator_host)
            self._cached = fetch_credentials(self._client, self.secret_version)
            self.fetches += 1
            self.on_fetch(self._cached)
        return self._cached

    def forget(self) -> None:
        self._cached = None

"""Looker API credentials, read from one Secret Manager secret version."""

from __future__ import annotations

import configparser
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from .config import SDK_CLIENT_ID, SDK_CLIENT_SECRET
from .errors import NeedsFix, one_line

PAYLOAD_SHAPE = '{"client_id": "...", "client_secret": "..."}'
_ACCESS_TIMEOUT_SECONDS = 10.0
#: How long an unreachable Secret Manager is retried (its client's default is 60 s) before the error says so.
_UNREACHABLE_SECONDS = 10.0


class CredentialsError(NeedsFix, RuntimeError):
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


def parse_payload(what: str, payload: bytes) -> LookerCredentials:
    """Parse ``{"client_id": ..., "client_secret": ...}``; ``what`` names where it came from in errors
    (``Secret projects/P/secrets/S/versions/latest``, ``The credentials file creds.json``)."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CredentialsError(f"{what} does not hold JSON; it must hold {PAYLOAD_SHAPE}") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{what} must hold a JSON object: {PAYLOAD_SHAPE}")
    missing = [key for key in ("client_id", "client_secret")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise CredentialsError(f"{what} has no {' or '.join(missing)}; it must hold {PAYLOAD_SHAPE}")
    return LookerCredentials(client_id=data["client_id"].strip(), client_secret=data["client_secret"].strip())


#: Where looker-sdk looks for its settings file, first one found (looker_sdk/rtl/api_settings.py, _DEFAULT_INIS:
#: https://github.com/looker-open-source/sdk-codegen/blob/main/python/looker_sdk/rtl/api_settings.py).
LOOKER_INI_PATHS = ("looker.ini", "../looker.ini")


def read_looker_ini(folder: Path) -> tuple[Path | None, dict[str, str]]:
    """The first looker.ini found from ``folder`` as looker-sdk finds it, and its first section's settings."""
    for name in LOOKER_INI_PATHS:
        path = folder / name
        if path.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, UnicodeDecodeError) as exc:
                raise CredentialsError(f"{path} is not a readable ini file: {exc.__class__.__name__}") from None
            sections = parser.sections()
            return path, dict(parser[sections[0]]) if sections else {}
    return None, {}


def conventional_credentials(env: Mapping[str, str], looker_ini: Mapping[str, str],
                             ini_path: Path | None) -> tuple[LookerCredentials, str] | None:
    """looker-sdk's conventions for a local run: LOOKERSDK_CLIENT_ID and LOOKERSDK_CLIENT_SECRET, else the
    client_id and client_secret of a looker.ini; with where they came from. None when neither has them."""
    client_id, secret = (env.get(SDK_CLIENT_ID) or "").strip(), (env.get(SDK_CLIENT_SECRET) or "").strip()
    if client_id and secret:
        source = f"the {SDK_CLIENT_ID} and {SDK_CLIENT_SECRET} environment variables"
        return LookerCredentials(client_id, secret), source
    if client_id or secret:
        have, lack = (SDK_CLIENT_ID, SDK_CLIENT_SECRET) if client_id else (SDK_CLIENT_SECRET, SDK_CLIENT_ID)
        raise CredentialsError(f"{have} is set but {lack} is not: set both, or neither")
    client_id, secret = (looker_ini.get("client_id") or "").strip(), (looker_ini.get("client_secret") or "").strip()
    if client_id and secret:
        return LookerCredentials(client_id, secret), f"client_id and client_secret in {ini_path}"
    if client_id or secret:
        raise CredentialsError(f"{ini_path} has {'client_id' if client_id else 'client_secret'} but not "
                               f"{'client_secret' if client_id else 'client_id'}: give both, or neither")
    return None


class SecretManagerUnreachable(RuntimeError):
    """Secret Manager did not answer in time; the message names it, the variable and what to check."""


def _quick_retry(seconds: float) -> retries.Retry:
    """Secret Manager's own retry of an unreachable service, ending after ``seconds`` instead of 60."""
    return retries.Retry(predicate=retries.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
                         initial=0.5, maximum=2.0, multiplier=2.0, timeout=seconds)


def fetch_credentials(client: secretmanager_v1.SecretManagerServiceClient, secret_version: str,
                      emulator_host: str | None = None) -> LookerCredentials:
    """Access the secret version and parse it; raise CredentialsError with what to fix."""
    variable = f"LOOKER_CREDENTIALS_SECRET={secret_version}"
    try:
        response = client.access_secret_version(name=secret_version, timeout=_ACCESS_TIMEOUT_SECONDS,
                                                retry=_quick_retry(_UNREACHABLE_SECONDS))
    except gexc.NotFound:
        parts = secret_version.split("/")
        project, secret = parts[1], parts[3]
        raise CredentialsError(
            f"Secret version {secret_version} was not found ({variable}): Secret Manager has no secret {secret!r} "
            f"with that version in project {project}. If the name is a typo, set LOOKER_CREDENTIALS_SECRET to the "
            f"right one (`gcloud secrets list --project {project}`); if the secret exists but has no version yet, "
            "add one: "
            f"`gcloud secrets versions add {secret} --project {project} --data-file=-` holding {PAYLOAD_SHAPE}"
        ) from None
    except gexc.PermissionDenied:
        raise CredentialsError(
            f"Permission denied on secret {secret_version} ({variable}): grant the function's service account "
            "roles/secretmanager.secretAccessor on that secret"
        ) from None
    except (gexc.RetryError, gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
        last = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause is not None else exc
        where = f"the emulator at SECRET_MANAGER_EMULATOR_HOST={emulator_host}" if emulator_host else \
            "secretmanager.googleapis.com"
        raise SecretManagerUnreachable(
            f"Secret Manager could not be reached for {variable} ({where}, {_UNREACHABLE_SECONDS:.0f} s of retries): "
            f"{_short(last)}. Check the network: a function whose egress goes through a VPC needs Private Google "
            "Access on its subnet or Cloud NAT (docs/networking.md); locally, check SECRET_MANAGER_EMULATOR_HOST"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise CredentialsError(f"Secret Manager failed for {secret_version} ({variable}): {exc.code} "
                               f"{exc.message}") from None
    return parse_payload(f"Secret {secret_version}", response.payload.data)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or exc
    code = getattr(exc, "code", None)
    return one_line(f"{code} {text}" if code is not None else text)


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
            self._cached = fetch_credentials(self._client, self.secret_version, self.emulator_host)
            self.fetches += 1
            self.on_fetch(self._cached)
        return self._cached

    def forget(self) -> None:
        self._cached = None

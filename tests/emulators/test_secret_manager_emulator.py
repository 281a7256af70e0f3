"""The Secret Manager emulator, driven by the real client over a real gRPC channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import google_crc32c
import grpc
import pytest
from google.api_core import exceptions
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from emulators.secret_manager import SecretManagerEmulator, project_number

SECRET = "projects/demo-project/secrets/looker-api-credentials"
NUMBER = project_number("demo-project")


@pytest.fixture
def emulator() -> Iterator[SecretManagerEmulator]:
    denied = {"projects/demo-project/secrets/locked"}
    with SecretManagerEmulator({SECRET: b'{"client_id": "id"}'}, denied=denied) as emu:
        yield emu


@pytest.fixture
def client(emulator: SecretManagerEmulator) -> Iterator[secretmanager_v1.SecretManagerServiceClient]:
    channel = grpc.insecure_channel(emulator.address)
    yield secretmanager_v1.SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))
    channel.close()


def access(client: Any, name: str) -> Any:
    return client.access_secret_version(name=name, retry=None)


def test_access_latest_and_numbered_versions(emulator: SecretManagerEmulator, client: Any) -> None:
    assert emulator.add_version(SECRET, b"second") == 2
    latest = access(client, f"{SECRET}/versions/latest")
    assert latest.name == f"projects/{NUMBER}/secrets/looker-api-credentials/versions/2"
    assert latest.payload.data == b"second"
    assert latest.payload.data_crc32c == google_crc32c.value(b"second")
    first = access(client, f"projects/{NUMBER}/secrets/looker-api-credentials/versions/1")
    assert first.payload.data == b'{"client_id": "id"}'
    assert emulator.stats() == {"access_calls": 2}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "projects/demo-project/secrets/missing/versions/latest",
            f"Secret [projects/{NUMBER}/secrets/missing] not found or has no versions.",
        ),
        (
            f"{SECRET}/versions/9",
            f"Secret Version [projects/{NUMBER}/secrets/looker-api-credentials/versions/9] not found.",
        ),
    ],
)
def test_not_found(client: Any, name: str, message: str) -> None:
    with pytest.raises(exceptions.NotFound) as caught:
        access(client, name)
    assert caught.value.message == message


def test_permission_denied_even_if_absent(client: Any) -> None:
    name = "projects/demo-project/secrets/locked/versions/latest"
    with pytest.raises(exceptions.PermissionDenied, match=r"Permission 'secretmanager\.versions\.access' denied"):
        access(client, name)


def test_deny_existing_secret(emulator: SecretManagerEmulator, client: Any) -> None:
    emulator.deny(SECRET)
    with pytest.raises(exceptions.PermissionDenied):
        access(client, f"{SECRET}/versions/1")


@pytest.mark.parametrize(
    "name",
    [
        SECRET,
        f"{SECRET}/versions/0",
        f"{SECRET}/versions/first",
        "secrets/s/versions/1",
        "projects/demo-project/locations/us/secrets/s/versions/1",
        "projects/p/secrets/bad.name/versions/1",
    ],
)
def test_malformed_names(client: Any, name: str) -> None:
    with pytest.raises(exceptions.InvalidArgument):
        access(client, name)


def test_disabled_latest_version(emulator: SecretManagerEmulator, client: Any) -> None:
    emulator.add_version(SECRET, b"v2")
    emulator.disable_version(SECRET, 2)
    with pytest.raises(exceptions.FailedPrecondition, match="DISABLED"):
        access(client, f"{SECRET}/versions/latest")
    assert access(client, f"{SECRET}/versions/1").payload.data


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, exceptions.ServiceUnavailable),
        (grpc.StatusCode.PERMISSION_DENIED, exceptions.PermissionDenied),
    ],
)
def test_injected_faults(emulator: SecretManagerEmulator, client: Any, code: grpc.StatusCode, error: type) -> None:
    emulator.inject(code)
    with pytest.raises(error):
        access(client, f"{SECRET}/versions/latest")
    assert access(client, f"{SECRET}/versions/latest").payload.data
    assert emulator.stats()["access_calls"] == 2


def test_default_retry_rides_out_one_unavailable(emulator: SecretManagerEmulator, client: Any) -> None:
    emulator.inject(grpc.StatusCode.UNAVAILABLE)
    assert client.access_secret_version(name=f"{SECRET}/versions/latest").payload.data

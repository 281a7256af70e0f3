"""The GCS emulator, driven by the real ``google.cloud.storage`` client over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from emulators.gcs import GcsEmulator

NAME = "looker/state.json"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    # The protocol tests write one object many times a second; the write-rate limit has its own test.
    with GcsEmulator(extra_stats=lambda: {"other": {"n": 1}}, object_write_interval=0.0) as emu:
        emu.create_bucket("demo-state")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.base_url)
        yield emu


@pytest.fixture
def bucket(emulator: GcsEmulator) -> storage.Bucket:
    return storage.Client(project="demo-project").bucket("demo-state")


def put(bucket: storage.Bucket, data: bytes, generation: int) -> storage.Blob:
    blob = bucket.blob(NAME)
    blob.upload_from_string(data, content_type="application/json", if_generation_match=generation, retry=None)
    return blob


def test_cursor_round_trip_with_preconditions(bucket: storage.Bucket) -> None:
    assert bucket.get_blob(NAME) is None
    first = put(bucket, b'{"v": 1}', 0)
    assert first.generation and first.metageneration == 1
    with pytest.raises(exceptions.PreconditionFailed):
        put(bucket, b'{"v": 0}', 0)
    current = bucket.get_blob(NAME)
    assert current is not None and current.generation == first.generation
    assert current.content_type == "application/json" and current.size == 8
    assert current.download_as_bytes(if_generation_match=current.generation) == b'{"v": 1}'
    second = put(bucket, b'{"v": 2}', current.generation)
    assert second.generation is not None and second.generation > first.generation
    with pytest.raises(exceptions.PreconditionFailed):
        put(bucket, b'{"v": 3}', first.generation)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob(NAME).download_as_bytes(if_generation_match=first.generation)
    reloaded = bucket.blob(NAME)
    reloaded.reload()
    assert reloaded.generation == second.generation and reloaded.download_as_bytes() == b'{"v": 2}'


def test_stale_pinned_generation_is_gone(bucket: storage.Bucket) -> None:
    put(bucket, b"1", 0)
    stale = bucket.get_blob(NAME)
    assert stale is not None
    put(bucket, b"2", stale.generation or 0)
    with pytest.raises(exceptions.NotFound):
        stale.download_as_bytes()  # its mediaLink names the overwritten generation


def test_metageneration_precondition(bucket: storage.Bucket) -> None:
    blob = put(bucket, b"1", 0)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.upload_from_string(b"2", if_metageneration_match=2, retry=None)
    blob.upload_from_string(b"2", if_metageneration_match=1, retry=None)


def test_update_of_missing_object_fails_precondition(bucket: storage.Bucket) -> None:
    with pytest.raises(exceptions.PreconditionFailed):
        put(bucket, b"1", 12345)


def test_not_found(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    with pytest.raises(exceptions.NotFound):
        bucket.blob(NAME).download_as_bytes()
    with pytest.raises(exceptions.NotFound):
        bucket.blob(NAME).reload()
    with pytest.raises(exceptions.NotFound):
        storage.Client(project="demo-project").get_bucket("no-such-bucket")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{emulator.base_url}/storage/v1/b/demo-state/o/looker%2Fstate.json")
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["error"] == {
        "code": 404,
        "message": "No such object: demo-state/looker/state.json",
        "errors": [
            {"message": "No such object: demo-state/looker/state.json", "domain": "global", "reason": "notFound"}
        ],
    }


def test_precondition_error_body(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    put(bucket, b"1", 0)
    request = urllib.request.Request(
        f"{emulator.base_url}/upload/storage/v1/b/demo-state/o?uploadType=media&name=looker%2Fstate.json"
        "&ifGenerationMatch=0",
        data=b"2",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 412
    assert json.loads(caught.value.read())["error"]["errors"][0]["reason"] == "conditionNotMet"


def test_multipart_checksum_is_verified(emulator: GcsEmulator) -> None:
    body = (
        b'--b\r\ncontent-type: application/json\r\n\r\n{"name": "x", "crc32c": "AAAAAA=="}\r\n'
        b"--b\r\ncontent-type: text/plain\r\n\r\nhello\r\n--b--"
    )
    request = urllib.request.Request(
        f"{emulator.base_url}/upload/storage/v1/b/demo-state/o?uploadType=multipart",
        data=body,
        method="POST",
        headers={"Content-Type": 'multipart/related; boundary="b"'},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400 and emulator.object_bytes("demo-state", "x") is None


def test_delete_with_precondition(bucket: storage.Bucket) -> None:
    blob = put(bucket, b"1", 0)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.delete(if_generation_match=(blob.generation or 0) + 1, retry=None)
    blob.delete(if_generation_match=blob.generation)
    assert bucket.get_blob(NAME) is None


def test_injected_status_and_retry(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    emulator.inject(503)
    with pytest.raises(exceptions.ServiceUnavailable):
        put(bucket, b"1", 0)
    emulator.inject(429, times=-1)
    with pytest.raises(exceptions.TooManyRequests):
        bucket.get_blob(NAME, retry=None)
    emulator.clear_faults()
    put(bucket, b"1", 0)
    assert emulator.stats()["injected_faults"] >= 2  # the client may also GET the bucket's metadata


def test_corrupt_sets_bytes_and_bumps_generation(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    blob = put(bucket, b'{"v": 1}', 0)
    generation = emulator.corrupt("demo-state", NAME, b"\x00not json")
    assert blob.generation is not None and generation > blob.generation
    current = bucket.get_blob(NAME)
    assert current is not None and current.generation == generation
    assert current.download_as_bytes() == b"\x00not json"


def test_other_ways_to_build_the_client(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    put(storage.Client.create_anonymous_client().bucket("demo-state"), b"1", 0)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    explicit = storage.Client(
        project="demo-project", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator.base_url}
    )
    assert explicit.bucket("demo-state").blob(NAME).download_as_bytes() == b"1"


def test_stats_endpoint(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    put(bucket, b"1", 0)
    with urllib.request.urlopen(f"{emulator.base_url}/_emulator/stats") as response:
        stats = json.loads(response.read())
    assert stats["other"] == {"n": 1}
    assert stats["gcs"]["uploads"] == 1 and stats["gcs"]["requests"] >= 1


def test_bucket_insert(emulator: GcsEmulator) -> None:
    client = storage.Client(project="demo-project")
    assert client.create_bucket("fresh-bucket").name == "fresh-bucket"
    with pytest.raises(exceptions.Conflict):
        client.create_bucket("fresh-bucket")


def test_one_write_per_second_per_object_as_gcs_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    with GcsEmulator() as emu:  # the default: GCS's documented limit
        emu.create_bucket("demo-state")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.base_url)
        bucket = storage.Client(project="demo-project").bucket("demo-state")
        first = put(bucket, b'{"v": 1}', 0)
        with pytest.raises(exceptions.TooManyRequests, match="rate limit for object mutation"):
            put(bucket, b'{"v": 2}', first.generation or 0)
        bucket.blob("other.json").upload_from_string(b"{}", retry=None)  # another object is not limited
        assert emu.stats()["rate_limited"] == 1
        time.sleep(1.05)
        assert put(bucket, b'{"v": 2}', first.generation or 0).generation
        # The client's default retry waits the limit out on its own.
        bucket.blob(NAME).upload_from_string(b'{"v": 3}', if_generation_match=None)
        assert emu.stats()["rate_limited"] >= 2 and bucket.blob(NAME).download_as_bytes() == b'{"v": 3}'


def test_a_revoked_permission_is_answered_403_as_gcs_words_it(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    put(bucket, b"{}", 0)
    emulator.revoke("demo-state", "storage.objects.delete")  # narrowed to create and read: no replacing
    with pytest.raises(exceptions.Forbidden, match=r"Permission 'storage\.objects\.delete' denied on resource"):
        bucket.blob(NAME).upload_from_string(b"{}", retry=None)  # replacing an object needs delete too
    bucket.blob("looker/new.json").upload_from_string(b"{}", retry=None)  # a new object needs create only
    assert bucket.blob(NAME).download_as_bytes() == b"{}"
    emulator.revoke("demo-state")  # every object permission of roles/storage.objectUser
    with pytest.raises(exceptions.Forbidden, match=r"Anonymous caller does not have storage\.objects\.get access"):
        bucket.blob("looker/absent.json").download_as_bytes(retry=None)  # 403 before 404: "(or it may not exist)"
    emulator.grant("demo-state")
    assert bucket.blob(NAME).download_as_bytes() == b"{}"


def test_a_deleted_bucket_is_answered_404(emulator: GcsEmulator, bucket: storage.Bucket) -> None:
    put(bucket, b"{}", 0)
    emulator.delete_bucket("demo-state")
    with pytest.raises(exceptions.NotFound, match="The specified bucket does not exist"):
        bucket.blob(NAME).upload_from_string(b"{}", retry=None)
    assert bucket.get_blob(NAME) is None  # the client's get_blob answers None for any 404

"""The real ``looker_sdk``, configured in memory, talking to a Looker emulator: shared by its tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import looker_sdk
from looker_sdk import models40
from looker_sdk.rtl.api_settings import ApiSettings, SettingsConfig

CLIENT_ID, CLIENT_SECRET = "emulator-id", "emulator-secret"
T0 = datetime(2024, 3, 10, 12, 0, 0, tzinfo=UTC)  # US DST starts that day at 10:00 UTC


class FakeClock:
    """A settable clock for the emulator."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Settings(ApiSettings):
    """SDK settings from memory instead of looker.ini or the environment."""

    def __init__(self, base_url: str, client_secret: str = CLIENT_SECRET) -> None:
        self._config: SettingsConfig = {
            "base_url": base_url,
            "client_id": CLIENT_ID,
            "client_secret": client_secret,
            "verify_ssl": "false",
            "timeout": "30",
        }
        super().__init__()

    def read_config(self) -> SettingsConfig:
        return dict(self._config)  # type: ignore[return-value]


def sdk_for(base_url: str, secret: str = CLIENT_SECRET) -> Any:
    return looker_sdk.init40(config_settings=Settings(base_url, secret))


def run(sdk: Any, view: str, fields: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    """``run_inline_query`` on a System Activity view; query fields and call options in one keyword list."""
    query_args = {k: v for k, v in kwargs.items() if k in ("filters", "sorts", "limit", "query_timezone")}
    call_args = {k: v for k, v in kwargs.items() if k not in query_args}
    body = models40.WriteQuery(model="system__activity", view=view, fields=fields, **query_args)
    return json.loads(sdk.run_inline_query("json", body, **call_args))  # type: ignore[no-any-return]

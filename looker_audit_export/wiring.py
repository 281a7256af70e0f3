"""The one place that builds the clients and the exporter from a ``Config``: Secret Manager, Looker, Cloud
Logging and the cursor store; and the interpreter settings of a process that runs exports.

Reads no environment variable itself (``Config`` does); the entry points (``function``, ``cli``,
``preflight``) call it.
"""

from __future__ import annotations

import gc
import sys

from .config import Config, ConfigError
from .credentials import CachedCredentials, LookerCredentials
from .export.run import Exporter
from .logs import mask_secret
from .looker.client import LookerClient
from .looker.reader import Instance, LookerSource
from .sink import CloudLoggingSink, Sink, logging_client
from .state import MemoryStateStore, StateStore, state_store


def build_source(config: Config, *, credentials: LookerCredentials | None = None,
                 credentials_source: str | None = None) -> LookerSource:
    """The Looker reader for ``config``: credentials from the secret, or ``credentials`` (a local file)."""
    if credentials is not None:
        given = credentials
        client = LookerClient(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                              lambda: given, credentials_source=credentials_source or "the credentials file",
                              backoff_seconds=config.retry_initial_seconds)
    elif config.credentials_secret is not None:
        cached = CachedCredentials(config.credentials_secret, config.secret_manager_emulator_host,
                                   on_fetch=lambda found: mask_secret(found.client_secret))
        client = LookerClient(config.looker_base_url, config.looker_verify_ssl, config.looker_timeout_seconds,
                              cached, cached.forget, credentials_source=f"secret {config.credentials_secret}",
                              backoff_seconds=config.retry_initial_seconds)
    else:
        raise ConfigError("LOOKER_CREDENTIALS_SECRET is not set: it must be a secret version like "
                          "projects/P/secrets/S/versions/latest")
    return LookerSource(client, Instance(client, declared_timezone=config.looker_query_timezone))


def build_exporter(config: Config, *, sink: Sink | None = None, credentials: LookerCredentials | None = None,
                   read_only_state: bool = False, credentials_source: str | None = None) -> Exporter:
    """Wire the real clients for ``config``: Secret Manager, Looker, Cloud Logging and the cursor store.

    ``credentials`` given (the CLI's credentials file, named by ``credentials_source``) replace the secret.
    """
    source = build_source(config, credentials=credentials, credentials_source=credentials_source)
    if sink is None:
        sink = CloudLoggingSink(logging_client(config.logging_emulator_host),
                                batch_entries=config.write_batch_entries,
                                retry_initial_seconds=config.retry_initial_seconds)
    store: StateStore
    if config.state_uri is None:
        store = MemoryStateStore()
    else:
        store = state_store(config.state_uri, config.project, emulator=bool(config.storage_emulator_host),
                            retry_initial_seconds=config.retry_initial_seconds)
        if read_only_state:
            store = MemoryStateStore(store.load()[0], uri=store.uri)
    tune_interpreter()
    return Exporter(config, source, sink, store)


def tune_interpreter() -> None:
    """Settings for a process that runs exports (the function's instance, the CLI): measured in benchmarks/."""
    # The modules and clients live as long as the instance: move them out of the collector's reach, which
    # the many rows of a run set off again and again (about 8% of a run's time otherwise).
    gc.freeze()
    # The reader thread makes many short socket reads; each waits for the mapping thread to release the GIL,
    # up to the switch interval (5 ms by default). 1 ms lets the next page arrive in time to be mapped.
    sys.setswitchinterval(0.001)

"""What every emulator shares: ``with`` starts it and stops it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Served:
    """An emulator that serves in the background between ``start()`` and ``stop()``."""

    def start(self) -> str:
        """Start serving; return the address clients use."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

"""What every emulator shares: ``with`` starts it and stops it; the HTTP ones also share their server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


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


class HttpServed(Served):
    """An emulator that serves HTTP from a daemon thread."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _serve(self, server: ThreadingHTTPServer, name: str) -> None:
        """Serve ``server`` (one daemon thread per connection) until ``stop()``."""
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, without access logs."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the client's
    # delayed ACK (~40 ms on Linux), which no real server adds.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

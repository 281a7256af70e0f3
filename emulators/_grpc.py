"""Shared plumbing for the gRPC emulators: server lifecycle and fault injection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from emulators._lifecycle import Served


class Abort(Exception):
    """Raised by a handler to end the call with a status (and optional details)."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[any_pb2.Any] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)


@dataclass
class _Fault:
    code: grpc.StatusCode | None  # None: delay only, then serve normally
    message: str
    delay: float
    remaining: int  # -1: until clear_faults()


class GrpcEmulator(Served):
    """A gRPC server hosting one service, with a queue of injectable faults.

    Faults are consumed in injection order, one per call of the faulted
    methods (subclasses decide which methods consult the queue).
    """

    def __init__(
        self,
        service: str,
        handlers: Mapping[str, Any],
        *,
        host: str,
        port: int,
        options: Sequence[tuple[str, Any]] = (),
        max_workers: int = 16,
    ) -> None:
        self._service = service
        self._handlers = dict(handlers)
        self._host = host
        self._port = port
        self._options = list(options)
        self._max_workers = max_workers
        self._server: Any = None
        self._faults: list[_Fault] = []
        self._faults_lock = threading.Lock()

    def start(self) -> str:
        """Start serving and return the address as ``host:port``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers), options=self._options)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(self._service, self._handlers),))
        self._port = server.add_insecure_port(f"{self._host}:{self._port}")
        server.start()
        self._server = server
        return self.address

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (the port is known after start())."""
        return f"{self._host}:{self._port}"


    def inject(self, code: grpc.StatusCode, *, times: int = 1, message: str = "Injected fault") -> None:
        """Fail the next ``times`` calls with ``code`` (-1: every call until cleared)."""
        self._add_fault(_Fault(code, message, 0.0, times))

    def inject_delay(self, seconds: float, *, times: int = 1) -> None:
        """Delay the next ``times`` calls by ``seconds`` before serving them normally.

        A delay past the client's deadline yields DEADLINE_EXCEEDED on the
        client while the server still applies the call, as a real backend may.
        """
        self._add_fault(_Fault(None, "", seconds, times))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._faults_lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining == 0 or fault.remaining < -1:
            raise ValueError("times must be positive or -1")
        with self._faults_lock:
            self._faults.append(fault)

    def _take_fault(self) -> Abort | None:
        """Consume the next fault: sleep for its delay, return its error if any."""
        with self._faults_lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.pop(0)
        if fault.delay:
            time.sleep(fault.delay)
        return None if fault.code is None else Abort(fault.code, fault.message)


def unary(behaviour: Callable[[Any], Any], request_cls: Any, response_cls: Any) -> Any:
    """A unary-unary handler over raw protobuf messages; ``behaviour(request)``
    returns the response or raises :class:`Abort`."""

    def handle(request: Any, context: Any) -> Any:
        try:
            return behaviour(request)
        except Abort as abort:
            if abort.details:
                status = status_pb2.Status(code=abort.code.value[0], message=abort.message, details=abort.details)
                context.abort_with_status(rpc_status.to_status(status))
            context.abort(abort.code, abort.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )

"""The HTTP server of the web page: uvicorn's h11 protocol with deadlines and connection caps.

Why uvicorn, and what is added. uvicorn (already the page's server) has an idle keep-alive
timeout, but every byte received resets it and nothing bounds the time until a request's
headers are complete: a client sending a header byte every few seconds holds a connection for
ever (slowloris). It also has no hard cap on open connections (`limit_concurrency` answers 503
only once a request's headers have arrived, so it cannot refuse a client that never finishes
them), no cap per client, no limit on the requests or the lifetime of a keep-alive connection,
and no deadline for sending: an answer to a client that never reads waits for ever (its
`FlowControl` only makes the app's `send` wait while the transport's buffer is paused).
hypercorn's keep_alive_timeout does run from a connection's start until its headers are
complete, but hypercorn has no connection cap at all; granian (Rust) has both, but runs the app
in worker processes it spawns itself, so the app could not be built in-process with its loaded
model as the tests and the CLI do. So the server is uvicorn's own h11 protocol, with:

- a header deadline (Limits.header_seconds) that starts when a connection opens and again
  when an answer has been sent, and closes the connection unless a request is in progress by
  then: it bounds both a trickle of header bytes and an idle keep-alive connection;
- uvicorn's idle keep-alive timeout (Limits.idle_seconds);
- a cap on open connections (Limits.connections) and on those from one client address
  (Limits.connections_per_client): the next one gets a 503 and is closed;
- a keep-alive connection's last request (Limits.requests_per_connection, or the first after
  Limits.connection_seconds) is answered with `Connection: close`, so a client that is never
  idle still gives its connection up;
- a send deadline (Limits.send_seconds): a connection whose transport stays paused for writing
  (pause_writing, no resume_writing: the client is not reading) that long is aborted, and so
  is one closed with an answer still unsent after that long;
- h11's limit on the size of the headers (16 KB, uvicorn's default).

The body's deadline, and the caps on uploads held and images decoded at once, are the app's
(pipeline/ui/app.py), as they concern one request. tests/local/test_ui_hostile.py checks each
behaviour against a real server, so an upgrade of uvicorn that breaks one fails a test.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.ui import memory
from pipeline.ui.limits import Limits


def _busy(reason: str) -> bytes:
    body = json.dumps({"error": f"the server is busy: {reason}; try again"}).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"X-Content-Type-Options: nosniff\r\nRetry-After: 2\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


BUSY_RESPONSE = _busy("too many open connections")
CLIENT_BUSY_RESPONSE = _busy("too many open connections from your address")


def _host(connection) -> str | None:
    client = getattr(connection, "client", None)
    return client[0] if client else None


def protocol(limits: Limits) -> type:
    """uvicorn's h11 protocol class with the deadlines and the connection caps."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _send_deadline: asyncio.TimerHandle | None = None
        _requests = 0
        _opened = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._opened = self.loop.time()
            host = _host(self)
            if len(self.connections) > limits.connections:
                self._refuse(BUSY_RESPONSE)
            elif sum(_host(c) == host for c in self.connections) > limits.connections_per_client:
                self._refuse(CLIENT_BUSY_RESPONSE)
            else:
                self._arm_deadline()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not None and self.cycle is not cycle:  # a request has started
                self._requests += 1
                old = self.loop.time() - self._opened >= limits.connection_seconds
                if old or self._requests >= limits.requests_per_connection:
                    # its answer says `Connection: close` (uvicorn adds it when the request
                    # has it) and h11 then closes; the app has not run yet
                    self.cycle.keep_alive = False
                    if CLOSE_HEADER not in self.scope["headers"]:
                        self.scope["headers"].append(CLOSE_HEADER)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_deadline()  # the next request's headers, idle time included
            self._linger()

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()
            self._linger()

        def pause_writing(self) -> None:
            super().pause_writing()  # uvicorn's FlowControl: the app's next send waits
            if self._send_deadline is None:
                self._send_deadline = self.loop.call_later(limits.send_seconds, self._send_late)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._send_deadline is not None and not self.transport.is_closing():
                self._send_deadline.cancel()
                self._send_deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._deadline, self._send_deadline):
                if timer is not None:
                    timer.cancel()
            self._deadline = self._send_deadline = None
            super().connection_lost(exc)

        def _refuse(self, answer: bytes) -> None:
            self.transport.write(answer)
            self.transport.close()
            self._linger()

        def _arm_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(limits.header_seconds, self._headers_late)

        def _headers_late(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()
                self._linger()

        def _linger(self) -> None:
            """A closed transport still sends what it holds, for as long as that takes: give
            a client that does not read it send_seconds, as for an answer in progress."""
            closing = self.transport.is_closing() and self.transport.get_write_buffer_size()
            if closing and self._send_deadline is None:
                self._send_deadline = self.loop.call_later(limits.send_seconds, self._send_late)

        def _send_late(self) -> None:
            self._send_deadline = None
            self.transport.abort()  # the unsent answer is dropped; connection_lost follows

    return GuardedH11Protocol


def make_server(app, host: str, port: int, limits: Limits | None = None, log_level="warning"):
    """A uvicorn.Server for `app` with the limits; `.run()` serves until `.should_exit`."""
    memory.map_large_blocks()  # this process's large buffers go back to the system when freed
    limits = limits or Limits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol(limits),
        timeout_keep_alive=limits.idle_seconds,
        log_level=log_level,
    )
    return uvicorn.Server(config)

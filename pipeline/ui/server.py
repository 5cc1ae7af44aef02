"""The HTTP server of the web page: uvicorn's h11 protocol with a header deadline and a
connection cap.

Why uvicorn, and what is added. uvicorn (already the page's server) has an idle keep-alive
timeout, but every byte received resets it and nothing bounds the time until a request's
headers are complete: a client sending a header byte every few seconds holds a connection for
ever (slowloris). It also has no hard cap on open connections (`limit_concurrency` answers 503
only once a request's headers have arrived, so it cannot refuse a client that never finishes
them). hypercorn's keep_alive_timeout does run from a connection's start until its headers
are complete, but hypercorn has no connection cap at all; granian (Rust) has both, but runs
the app in worker processes it spawns itself, so the app could not be built in-process with its
loaded model as the tests and the CLI do. So the server is uvicorn's own h11 protocol, with:

- a header deadline (Limits.header_seconds) that starts when a connection opens and again
  when an answer has been sent, and closes the connection unless a request is in progress by
  then: it bounds both a trickle of header bytes and an idle keep-alive connection;
- uvicorn's idle keep-alive timeout (Limits.idle_seconds);
- a cap on open connections (Limits.connections): the next one gets a 503 and is closed;
- h11's limit on the size of the headers (16 KB, uvicorn's default).

The body's deadline, and the caps on uploads held and images decoded at once, are the app's
(pipeline/ui/app.py), as they concern one request. tests/local/test_ui_hostile.py checks each
behaviour against a real server, so an upgrade of uvicorn that breaks one fails a test.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.ui import memory
from pipeline.ui.limits import Limits

_BUSY = json.dumps({"error": "the server is busy: too many open connections; try again"}).encode()
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"X-Content-Type-Options: nosniff\r\nRetry-After: 2\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


def protocol(limits: Limits) -> type:
    """uvicorn's h11 protocol class with the header deadline and the connection cap."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.connections:
                transport.write(BUSY_RESPONSE)
                transport.close()
                return
            self._arm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_deadline()  # the next request's headers, idle time included

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(limits.header_seconds, self._headers_late)

        def _headers_late(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

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

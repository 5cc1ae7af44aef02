"""What one `mnist-pipeline ui` process lets its clients hold: time, connections, memory, CPU.

One set of numbers serves the server (pipeline/ui/server.py: connections, per client too, the
lifetime of a keep-alive connection, and the deadlines for a request's headers and for sending
an answer) and the app (pipeline/ui/app.py: the deadline for a body, how many
uploads are held and images decoded at once), so the CLI and the tests configure both the same
way. The memory of one decode is bounded in components/reading/image_decode.py.
"""

from __future__ import annotations

import dataclasses


def _cores() -> int:
    from components.batch_predict.stream import available_cpus

    return available_cpus()  # the affinity, capped by a pod's CPU limit


@dataclasses.dataclass(frozen=True)
class Limits:
    """Defaults sized for one pod with a 1 GiB memory limit (manifests/base/ui)."""

    # A request's complete headers, counted from the connection's start or the previous
    # answer: a client trickling header bytes, or holding an idle connection, is cut off.
    header_seconds: float = 10.0
    # Idle keep-alive between requests, before any byte of the next one arrives.
    idle_seconds: float = 5.0
    # The whole request body: at 20 s a 10 MB upload needs 4 Mbit/s, a 3 MB photo 1.2 Mbit/s.
    body_seconds: float = 20.0
    # Connections open at once; the next one is answered 503 and closed at once.
    connections: int = 64
    # Connections open at once from one client address, so one client cannot hold them all;
    # the next one is answered 503 and closed. Behind a proxy (an ingress, `kubectl
    # port-forward`) every client has the proxy's address: raise it there, to `connections`.
    connections_per_client: int = 8
    # Requests answered on one keep-alive connection, and its lifetime: the answer after
    # either carries `Connection: close`, so a busy client reconnects (and queues behind the
    # per-client cap) instead of holding a connection for ever.
    requests_per_connection: int = 100
    connection_seconds: float = 60.0
    # How long an answer may wait on a client that does not read it (the socket's buffers
    # full, asyncio's pause_writing with no resume_writing) before the connection is aborted.
    send_seconds: float = 20.0
    # Uploads held at once (each up to MAX_UPLOAD bytes, until its answer is sent).
    uploads: int = 8
    # Images decoded at once: one per core, as each decode is CPU-bound and holds up to
    # image_decode.MAX_DECODED_BYTES.
    decodes: int = dataclasses.field(default_factory=_cores)
    # How long a request waits for an upload or decode slot before it is answered 503.
    queue_seconds: float = 2.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"Limits.{field.name} must be positive")

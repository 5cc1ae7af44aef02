"""Checks of a TF Serving gRPC endpoint, cheap enough for the CLI (no grpc, no TensorFlow)."""

from __future__ import annotations

import re

from components.common.errors import InputError

PARAMETER = "serving_endpoint"  # what the user set: named in every refusal of a bad target
# host:port, the host a DNS name, IPv4 address or [IPv6] address; gRPC's own schemes are refused.
HOST = r"[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\]"
TARGET = re.compile(rf"(?P<host>{HOST}):(?P<port>\d{{1,5}})")
SCHEME = re.compile(r"(dns|unix|unix-abstract|ipv4|ipv6|vsock|https?|grpcs?):", re.I)


def check_target(target: str) -> str:
    """`target` as gRPC takes it ("host:port"), or a ValueError naming `serving_endpoint`.

    A URL is refused rather than stripped: TF Serving's gRPC port (8500) and REST port (8501)
    differ, and `http://host:8501` most likely names the REST API, which this client cannot use.
    """
    match = TARGET.fullmatch(target or "")
    if match and 1 <= int(match["port"]) <= 65535:
        return target
    if "://" in target or SCHEME.match(target):
        problem = "without a URL scheme"
    elif not target or ":" not in target or target.endswith((":", "]")):
        problem = "with the gRPC port"
    elif match:
        problem = "with a port from 1 to 65535"
    else:
        problem = "of a host name or IP address and a port number"
    raise InputError(
        f"{PARAMETER} must be host:port {problem} (e.g. tf-serving.kubeflow:8500), got {target!r}"
    )

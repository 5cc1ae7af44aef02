"""The one place a `kfp.Client` is made: bounded waits, one health check.

A command does::

    with kfp_client(settings) as client:
        ...

Inside the block, any failure to reach or use the API leaves as one line (kfp_errors.py). kfp is
imported only when a client is made, so `--help` stays fast. Every use of kfp's private
attributes is in `_bound_waits`, and tests/unit/test_kfp_internals.py fails, saying what to
re-check, when an upgrade of kfp moves them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

import click

from pipeline.commands.kfp_options import ENV_NAMESPACE, KfpSettings

CONNECT_TIMEOUT = 10  # seconds; the stock client waits forever
READ_TIMEOUT_ENV, READ_TIMEOUT = "MNIST_KFP_TIMEOUT", 30.0  # seconds for an answer, per try
READ_TRIES = 3  # a read is tried this often (idempotent calls only), so at most 3 x 30 s
CONNECT_TRIES = 3
EXIT_API_ERROR = 3


class KfpApiError(click.ClickException):
    """The KFP API could not be reached, refused us, or answered an error: one line, exit 3."""

    exit_code = EXIT_API_ERROR


def read_timeout() -> float:
    return float(os.environ.get(READ_TIMEOUT_ENV) or READ_TIMEOUT)


def connect_timeout() -> float:
    return min(CONNECT_TIMEOUT, read_timeout())


@contextlib.contextmanager
def kfp_client(settings: KfpSettings) -> Iterator[Any]:
    """A health-checked kfp.Client; API failures in the block become a one-line KfpApiError."""
    from pipeline.commands.kfp_errors import api_errors  # it words this module's failures

    with api_errors(settings):
        yield connect(settings)


def connect(settings: KfpSettings):
    """Make the client and check the API's health once; returns the `kfp.Client`."""
    client_class = _client_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only works with KFP v2.0.0-beta.2 and later"
        client = client_class(
            host=settings.host,
            namespace=settings.namespace or "kubeflow",  # kfp's default keeps its context file
            existing_token=settings.token,
            credentials=_file_credentials(settings.token_file),
            ssl_ca_cert=settings.ca_cert,
        )
    healthz = client.get_kfp_healthz()
    if healthz.multi_user and not (settings.namespace or client.get_user_namespace()):
        raise KfpApiError(
            f"KFP API at {settings.host} is multi-user: pass --namespace (your "
            f"Kubeflow profile namespace) or set {ENV_NAMESPACE}"
        )
    return client


def _file_credentials(token_file: str | None):
    if not token_file:
        return None
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials(path=token_file)


@functools.cache
def _client_class():
    """kfp.Client with one health check, built on first use (imports kfp).

    The stock client retries the health check five times five seconds apart; a CLI should fail
    fast and say why. Its other waits are bounded by `_bound_waits`.
    """
    import kfp

    class BoundedClient(kfp.Client):
        def __init__(self, **kwargs):
            self._healthz = None
            super().__init__(**kwargs)
            self.get_kfp_healthz()

        def get_kfp_healthz(self, sleep_duration: int = 5):
            # kfp.Client.__init__ calls this before any other request: bound the waits first
            if self._healthz is None:
                _bound_waits(self)
                self._healthz = check_health(self._healthz_api)
            return self._healthz

    return BoundedClient


# kfp 2.17's internals that `_bound_waits` reaches: every API object shares one generated
# ApiClient, whose RESTClientObject holds the urllib3 PoolManager all requests go through.
PRIVATE_PATH = ("_healthz_api", "api_client", "rest_client", "pool_manager")


def _bound_waits(client) -> None:
    """Bound every request of `client`: connect and read timeouts, few retries, no redirects.

    The only use of kfp's private attributes (PRIVATE_PATH). kfp's generated REST client passes
    `timeout=None` with every request unless the caller sets one, which urllib3 takes as "wait
    forever", and it follows redirects (to a login page). So the PoolManager's `request` gets a
    default timeout, and its pools get bounded retries. Re-check PRIVATE_PATH, and that
    `rest_client.pool_manager.request(method, url, timeout=..., ...)` is still how requests go,
    when upgrading kfp: tests/unit/test_kfp_internals.py fails when they move.
    """
    import urllib3

    pool = client
    for name in PRIVATE_PATH:
        pool = getattr(pool, name)
    timeout = urllib3.Timeout(connect=connect_timeout(), read=read_timeout())
    pool.connection_pool_kw["timeout"] = timeout
    pool.connection_pool_kw["retries"] = urllib3.Retry(
        total=3,
        connect=CONNECT_TRIES - 1,
        read=READ_TRIES - 1,  # urllib3 retries reads of idempotent methods only
        status=0,
        other=0,
        redirect=False,
        backoff_factor=0.25,
    )
    pool.clear()
    request = pool.request

    def bounded_request(method, url, *args, timeout=None, **kwargs):
        return request(
            method, url, *args, timeout=timeout or pool.connection_pool_kw["timeout"], **kwargs
        )

    pool.request = bounded_request


class NotKfpApi(Exception):
    """The host answered, but not as the KFP API does (an HTML page, say)."""


def check_health(healthz_api):
    """One GET of /apis/v2beta1/healthz; raise NotKfpApi unless it answers KFP's JSON."""
    import kfp_server_api

    response = healthz_api.healthz_service_get_healthz(
        _preload_content=False, _request_timeout=(connect_timeout(), read_timeout())
    )
    kind = response.headers.get("content-type", "")
    try:
        data = json.loads(response.data)
    except ValueError:
        data = None
    if "json" not in kind or not isinstance(data, dict):
        raise NotKfpApi(kind.split(";")[0] or "no content type")
    return kfp_server_api.V2beta1GetHealthzResponse(
        multi_user=data.get("multi_user"), pipeline_store=data.get("pipeline_store")
    )

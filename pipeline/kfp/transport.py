"""Bounded waits for every request a `kfp.Client` sends, and the one health check.

The stock client waits forever for an answer (its generated REST client passes `timeout=None`,
which urllib3 takes as "no limit"), follows redirects to a login page, and retries the health
check five times five seconds apart. A CLI should fail fast and say why: connect and read
timeouts, few retries of idempotent reads, no redirects, one health check.

kfp has no public setting for any of this, so this module reaches into the client's private
attributes (PRIVATE_PATH, `healthz_service_get_healthz`'s `_preload_content` and
`_request_timeout`); tests/unit/test_kfp_internals.py fails, naming what to re-check, when an
upgrade of kfp moves them.
"""

from __future__ import annotations

import json

from components.common.units import env_number
from pipeline.kfp.errors import NotKfpApi

CONNECT_TIMEOUT = 10  # seconds; the stock client waits forever
READ_TIMEOUT_ENV, READ_TIMEOUT = "MNIST_KFP_TIMEOUT", 30.0  # seconds for an answer, per try
READ_TRIES = 3  # a read is tried this often (idempotent calls only), so at most 3 x 30 s
CONNECT_TRIES = 3

# kfp 2.17's internals that `bound_waits` reaches: every API object shares one generated
# ApiClient, whose RESTClientObject holds the urllib3 PoolManager all requests go through.
PRIVATE_PATH = ("_healthz_api", "api_client", "rest_client", "pool_manager")


def read_timeout() -> float:
    return env_number(READ_TIMEOUT_ENV, READ_TIMEOUT)


def connect_timeout() -> float:
    return min(CONNECT_TIMEOUT, read_timeout())


def bound_waits(client) -> None:
    """Bound every request of `client`: connect and read timeouts, few retries, no redirects.

    The PoolManager's `request` gets a default timeout, and its pools get bounded retries.
    Re-check PRIVATE_PATH, and that `rest_client.pool_manager.request(method, url, timeout=...)`
    is still how requests go, when upgrading kfp.
    """
    import urllib3

    pool = client
    for name in PRIVATE_PATH:  # no public way to the pool: see the module docstring
        pool = getattr(pool, name)
    pool.connection_pool_kw["timeout"] = urllib3.Timeout(
        connect=connect_timeout(), read=read_timeout()
    )
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
        timeout = timeout or pool.connection_pool_kw["timeout"]
        return request(method, url, *args, timeout=timeout, **kwargs)

    pool.request = bounded_request


def check_health(client, host: str):
    """One GET of /apis/v2beta1/healthz at `host`; NotKfpApi unless it answers KFP's JSON.

    `kfp.Client.get_kfp_healthz` cannot be used: it retries five times, and it parses the
    answer as JSON before anyone can see it was an HTML page. So the generated API object is
    asked for the raw answer (`_preload_content=False`), with a timeout of its own.
    """
    import kfp_server_api

    response = client._healthz_api.healthz_service_get_healthz(
        _preload_content=False, _request_timeout=(connect_timeout(), read_timeout())
    )
    kind = response.headers.get("content-type", "")
    try:
        data = json.loads(response.data)
    except ValueError:
        data = None
    if "json" not in kind or not isinstance(data, dict):
        raise NotKfpApi(
            f"{host} answered with {kind.split(';')[0] or 'no content type'} instead of the KFP "
            "API's JSON: check --host is the KFP API URL (for Kubeflow, "
            "https://<your-kubeflow>/pipeline)"
        )
    return kfp_server_api.V2beta1GetHealthzResponse(
        multi_user=data.get("multi_user"), pipeline_store=data.get("pipeline_store")
    )

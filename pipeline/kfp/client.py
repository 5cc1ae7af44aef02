"""The one place a `kfp.Client` is made: bounded waits, one health check, one-line failures.

A command does::

    with kfp_client(settings) as client:
        ...

Inside the block, any failure to reach or use the API leaves as one `KfpApiError` line (exit 3;
describe.py words it). kfp is imported only when a client is made, so `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Iterator
from typing import Any

from components.common.errors import StepError
from pipeline.kfp.describe import describe_failure
from pipeline.kfp.errors import KfpApiError
from pipeline.kfp.settings import ENV_NAMESPACE, KfpSettings
from pipeline.kfp.transport import bound_waits, check_health


@contextlib.contextmanager
def kfp_client(settings: KfpSettings) -> Iterator[Any]:
    """A health-checked kfp.Client; API failures in the block become a one-line KfpApiError."""
    with api_errors(settings):
        yield connect(settings)


@contextlib.contextmanager
def api_errors(settings: KfpSettings) -> Iterator[None]:
    """Turn a failure to reach or use the KFP API into KfpApiError; let the rest through."""
    try:
        yield
    except StepError:  # worded already (a KfpApiError, a run that cannot be retried...)
        raise
    except Exception as e:  # describe_failure decides which failures are the API's
        message = describe_failure(e, settings)
        if message is None:
            raise
        raise KfpApiError(message) from None


def connect(settings: KfpSettings):
    """Make the client and check the API's health once; returns the `kfp.Client`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only works with KFP v2.0.0-beta.2 and later"
        client = _client_class()(
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
    """Credentials that read `token_file` before every request (a rotated token keeps working)."""
    if not token_file:
        return None
    from kfp.client import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials(path=token_file)


@functools.cache
def _client_class():
    """kfp.Client with bounded waits and one health check, built on first use (imports kfp)."""
    import kfp

    class BoundedClient(kfp.Client):
        def __init__(self, **kwargs):
            self._healthz, self._named_host = None, kwargs["host"]
            super().__init__(**kwargs)
            self.get_kfp_healthz()

        def get_kfp_healthz(self, sleep_duration: int = 5):
            # kfp.Client.__init__ calls this before any other request: bound the waits first
            if self._healthz is None:
                bound_waits(self)
                self._healthz = check_health(self, self._named_host)
            return self._healthz

    return BoundedClient


def quietly(method, *args, **kwargs):
    """Call a kfp.Client method without the 'Run details: ...' lines it prints itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        return method(*args, **kwargs)

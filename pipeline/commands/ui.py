"""`mnist-pipeline ui`: a web page to draw or upload a digit and see what the model says."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from components.common.redact import malformed, printable
from pipeline.commands.options import renamed, require_tensorflow, s3_endpoint_option


def _serving_url(ctx, param, value: str | None) -> str | None:
    """An http(s) URL with a host, refused in one line before anything is asked of it."""
    if value is None:
        return None
    why = malformed(value)
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # a '[' with no ']' where the host would be: `why` says so
        parts = None
    else:
        why = why if parts.scheme in ("http", "https") else "it is not http(s)://"
    if why or not parts.hostname:
        raise click.BadParameter(
            f"{printable(value[:200])!r} cannot be used ({why or 'it names no host'}): give "
            "TF Serving's REST address, such as http://mnist-serving:8501"
        )
    return value


@click.command("ui")
@click.option(
    "--model",
    "model_uri",
    default="./mnist-store",
    show_default=True,
    help="A model version folder or s3:// URI, or a store (or its models/mnist prefix): then "
    "its newest complete version.",
)
@click.option(
    "--serving-url",
    metavar="URL",
    callback=_serving_url,
    help="Ask TF Serving's REST API (or KServe's v1 protocol) at URL instead, e.g. "
    "http://mnist-serving:8501.",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="With --serving-url: ask TF Serving for its model version before serving (--no-check "
    "serves anyway; the page says when TF Serving cannot answer).",
)
@s3_endpoint_option
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on (0.0.0.0: every interface). --host is the KFP API elsewhere.",
)
@renamed("--host", "--bind", "bind")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--connections-per-client",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Connections one client address may hold open. Behind a proxy (an ingress, "
    "kubectl port-forward) every client has the proxy's address: raise it to 64 there and "
    "limit clients at the proxy.",
)
def ui_cmd(
    model_uri: str,
    serving_url: str | None,
    check: bool,
    s3_endpoint: str,
    bind: str,
    port: int,
    connections_per_client: int,
):
    """Serve a page to draw or upload a digit and see the prediction, the 10 probabilities
    and the 28x28 image the model saw, from an exported model or from TF Serving.

    \b
      make demo && make ui        # then open http://127.0.0.1:8000/
    """
    try:
        from pipeline.ui.app import create_app
        from pipeline.ui.backends import Embedded, ServingRest
        from pipeline.ui.limits import Limits
        from pipeline.ui.server import make_server
    except ImportError:
        raise click.ClickException(
            "the web page needs the ui extra: pip install 'mnist-kfp[ui]'"
        ) from None
    if serving_url:  # a BackendError is one line, as every StepError
        backend = ServingRest(serving_url)
        if check:
            backend.status()  # fails now, in one line, when TF Serving is not there
    else:
        require_tensorflow("ui")
        backend = Embedded(model_uri, s3_endpoint)
    # pipeline/ui/limits.py: deadlines, connections, uploads, decodes
    limits = Limits(connections_per_client=connections_per_client)
    click.echo(f"serving {backend.label} at http://{bind}:{port}/", err=True)
    make_server(create_app(backend, limits=limits), bind, port, limits).run()

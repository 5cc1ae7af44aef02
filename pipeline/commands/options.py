"""Click options several commands share: the cluster settings compiled into the pipeline
(compile, submit, upload...), pipeline parameters, an uploaded pipeline to run, caching."""

from __future__ import annotations

import functools
import re

import click
from click.core import ParameterSource

from pipeline.params import (
    TYPES,
    ParameterError,
    load_params_file,
    parse_assignments,
    validate_arguments,
)


class KfpId(click.ParamType):
    """A run or recurring-run id as KFP makes them (UUIDs): checked before it goes into an API
    path, so an empty id, or one holding '/', '?' or '..', never reaches the server."""

    name = "ID"
    _FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

    def convert(self, value, param, ctx) -> str:
        value = str(value).strip()
        if not value:
            self.fail("must not be empty: give the id that `list` prints", param, ctx)
        if not self._FORM.fullmatch(value) or ".." in value:
            from components.common.redact import printable

            self.fail(
                f"{printable(value[:80])!r} is not a KFP id (letters, digits, '-', '_' and '.', "
                "at most 128): give the id that `list` prints",
                param,
                ctx,
            )
        return value


KFP_ID = KfpId()


class ScheduleKey(click.ParamType):
    """A recurring run's ID or name: any printable text up to 256 characters. It is looked up
    in a listing (recurring.find_recurring_run), never put into an API path itself."""

    name = "ID|NAME"

    def convert(self, value, param, ctx) -> str:
        from components.common.redact import printable

        value = str(value).strip()
        if not value or len(value) > 256 or printable(value) != value:
            self.fail(
                f"{printable(value[:80])!r} is not a recurring run's ID or name: give one that "
                "`schedule list` prints",
                param,
                ctx,
            )
        return value


SCHEDULE_KEY = ScheduleKey()


def renamed(old: str, new: str, dest: str, **option):
    """Keep `old`, the former spelling of the option `new` (its parameter `dest`), working
    for one release: hidden from --help and the reference, it sets `dest` and prints one
    deprecation line on stderr. Both at once is a usage error. `option`: click.option's
    settings (type, metavar...) for the old spelling."""
    legacy = f"deprecated_{dest}"

    def decorate(fn):
        @click.option(*old.split("/"), legacy, hidden=True, default=None, **option)
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(legacy)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) is ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"give {new} alone: {old} is its old spelling")
                click.echo(
                    f"warning: {old} is deprecated and goes in the next release; use {new}",
                    err=True,
                )
                kwargs[dest] = value
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def s3_endpoint_option(fn):
    """`--s3-endpoint`; unset, the store resolves $AWS_ENDPOINT_URL, else AWS (see s3.py)."""
    return click.option(
        "--s3-endpoint",
        default="",
        show_default="$AWS_ENDPOINT_URL, else AWS",
        help="S3 endpoint, host:port or http(s)://host:port. Credentials come from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.",
    )(fn)


def parameter_options(*names: str):
    """`--name` options for pipeline parameters, typed, defaulted and described by the table.

    Values are range-checked once, with the rest of the run's arguments (validate_arguments).
    """
    from components.common.parameters import PARAMETERS, TUNE_PARAMETERS

    table = {p.name: p for p in PARAMETERS + TUNE_PARAMETERS}

    def decorate(fn):
        for name in reversed(names):
            param = table[name]
            fn = click.option(
                f"--{name.replace('_', '-')}",
                name,
                default=param.default,
                show_default=True,
                type=param.type,
                help=param.description,
            )(fn)
        return fn

    return decorate


def require_tensorflow(command: str) -> None:
    """Say which extra to install when a command that trains or predicts lacks TensorFlow."""
    import importlib.util

    missing = [
        m for m in ("tensorflow", "tensorflow_serving") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise click.ClickException(
            f"`mnist-pipeline {command}` needs TensorFlow ({', '.join(missing)} is not "
            "installed): pip install 'mnist-kfp[tensorflow]'"
        )


def param_option(fn):
    """--params-file FILE and --param NAME=VALUE (repeatable, it wins over the file), typed
    and range-checked before anything is sent; the command gets them as `params`."""

    @click.option(
        "--params-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Pipeline parameters from a YAML or JSON file of name: value pairs.",
    )
    @click.option(
        "--param",
        "param_pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="Pipeline parameter, repeatable, e.g. --param epochs=3; wins over --params-file. "
        f"Names: {', '.join(TYPES)}. Unset ones keep the pipeline's defaults.",
    )
    @functools.wraps(fn)
    def wrapper(*args, params_file, param_pairs, **kwargs):
        try:
            values = load_params_file(params_file) if params_file else {}
            values.update(parse_assignments(param_pairs))
            validate_arguments(values)
        except ParameterError as e:
            raise click.BadParameter(str(e), param_hint="--param / --params-file") from None
        return fn(*args, params=values, **kwargs)

    return wrapper


def uploaded_pipeline_options(fn):
    """--pipeline NAME [--version NAME]: run what was uploaded (what the UI shows) instead of
    compiling the local code; passed as `pipeline_name` and `version_name`."""
    fn = click.option(
        "--version",
        "version_name",
        metavar="NAME",
        help="With --pipeline: this version of it. [default: its newest]",
    )(fn)
    return click.option(
        "--pipeline",
        "pipeline_name",
        metavar="NAME",
        help="Run this uploaded pipeline (see `upload`) instead of compiling the local code.",
    )(fn)


def caching_option(fn):
    return click.option(
        "--enable-caching/--disable-caching",
        "enable_caching",
        default=None,
        help="Reuse (or not) the outputs of earlier identical steps. [default: as compiled: "
        "download and unpack-and-upload cached, train and batch-predict not]",
    )(fn)

"""`mnist-pipeline`: the root command.

Sub-commands live in `pipeline/commands/<name>.py` and are imported only when invoked, so
`--help` and `compile` stay fast and never import TensorFlow.
"""

from __future__ import annotations

import importlib
import traceback

import click

from components.common.errors import StepError
from components.common.failure import one_line
from components.common.redact import shown
from pipeline.commands.global_flags import GlobalFlagsGroup

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS = {
    "compile": ("pipeline.commands.compile", "compile_cmd", "Compile the pipeline to KFP IR YAML."),
    "run": ("pipeline.commands.run", "run_cmd", "Run the whole pipeline locally (no cluster)."),
    "predict": (
        "pipeline.commands.predict",
        "predict_cmd",
        "Classify image files with an exported model.",
    ),
    "submit": (
        "pipeline.commands.submit",
        "submit_cmd",
        "Start a run on Kubeflow Pipelines (--wait to follow it).",
    ),
    "tune": (
        "pipeline.commands.tune",
        "tune_cmd",
        "Search the training's hyper-parameters with Katib, then train with the best.",
    ),
    "upload": (
        "pipeline.commands.upload",
        "upload_cmd",
        "Upload the pipeline (or a new version) for the Kubeflow UI.",
    ),
    "runs": (
        "pipeline.commands.runs",
        "runs_group",
        "List, inspect, follow, cancel and retry runs on Kubeflow.",
    ),
    "schedule": (
        "pipeline.commands.schedule",
        "schedule_group",
        "Create, list, enable, disable or delete recurring runs.",
    ),
    "ui": (
        "pipeline.commands.ui",
        "ui_cmd",
        "A web page to draw or upload a digit and see the prediction.",
    ),
    "clean": (
        "pipeline.commands.clean",
        "clean_cmd",
        "Delete what runs left in the store (dry run unless --yes).",
    ),
}


class LazyGroup(GlobalFlagsGroup):
    """A group whose sub-commands are imported on first use; the global flags (--host, -n,
    -o...) may come before the sub-command's name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        """Every failure ends in one line and a non-zero status; Ctrl-C or SIGTERM in 130."""
        from pipeline.console import safe_output
        from pipeline.processes import stop_descendants, terminate_on_sigterm

        terminate_on_sigterm()
        try:
            with safe_output():  # secrets redacted, control characters escaped
                return super().invoke(ctx)
        except KeyboardInterrupt:
            stopped = stop_descendants()
            click.echo(f"\ninterrupted; stopped {stopped} process(es) this run started", err=True)
            ctx.exit(130)
        except click.ClickException as e:  # shown after safe_output ends: made safe here
            e.message = shown(e.message)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except StepError as e:  # a bad input or a bad condition: the message says which
            raise _one_line(e) from None
        except Exception:  # a bug: its traceback is for us, but redacted and escaped too
            click.echo(shown(traceback.format_exc(), newlines=True), err=True)
            ctx.exit(1)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        """The root's own usage errors (an unknown option echoed back) are made safe too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as e:
            e.message = shown(e.message)
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _one_line(error: StepError) -> click.ClickException:
    """The StepError as click shows an error: `Error: <its first line>`, redacted and escaped
    (failure.one_line, as a step reports it), and its exit status."""
    shown_error = click.ClickException(one_line(error))
    shown_error.exit_code = error.exit_code
    return shown_error


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mnist-kfp")
def main() -> None:
    """MNIST handwritten-digit recognition on Kubeflow Pipelines (KFP v2).

    Compile the pipeline, run it on a laptop with no cluster, or classify images with an
    exported model.
    """


if __name__ == "__main__":
    main()

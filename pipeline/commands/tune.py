"""`mnist-pipeline tune`: a run of the tuning pipeline (mnist-tune): Katib picks the training's
hyper-parameters, then the pipeline trains, gates, exports and predicts with them."""

from __future__ import annotations

import click

from pipeline.commands.cluster_flags import cluster_options
from pipeline.commands.connection import kfp_options
from pipeline.commands.follow import report_run
from pipeline.commands.options import param_option, parameter_options
from pipeline.commands.output import emit, output_option
from pipeline.commands.plan import compiled_package, default_run_name, dry_run_plan, show_plan
from pipeline.kfp.client import kfp_client
from pipeline.kfp.runs import start_run


@click.command("tune")
@click.option("--experiment", metavar="NAME", help="KFP experiment. [default: mnist-tune]")
@click.option("--run-name", metavar="NAME", help="Run name. [default: mnist-tune and the time]")
@parameter_options("algorithm", "goal", "max_trials", "parallel_trials", "max_epochs")
@param_option
@click.option("--wait", is_flag=True, help="Follow the run; exit with its outcome.")
@click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS", help="With --wait.")
@click.option("--poll-interval", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would be sent; call nothing.")
@output_option
@cluster_options
@kfp_options
def tune_cmd(
    kfp_settings,
    experiment: str | None,
    run_name: str | None,
    params: dict,
    wait: bool,
    timeout: int | None,
    poll_interval: float,
    dry_run: bool,
    output: str,
    **flags,
) -> None:
    """Search learning_rate, batch_size and epochs with Katib, then train with the best.

    The tuning pipeline runs a Katib Experiment (its trials run the train code from the GPU
    image, with the train step's GPU scheduling) and then the usual train, gate, export and
    batch-predict with the best trial's values. Prerequisites in the namespace: Katib, the
    label katib.kubeflow.org/metrics-collector-injection=enabled, and manifests/overlays/katib.

    \b
      mnist-pipeline tune --algorithm tpe --max-trials 12 --parallel-trials 2 --wait
    """
    from pipeline.dag import TUNE_PIPELINE_NAME
    from pipeline.signature import TUNED

    search = {k: flags.pop(k) for k in ("algorithm", "goal", "max_trials", "parallel_trials",
                                        "max_epochs")}  # fmt: skip
    tuned = sorted(set(params) & set(TUNED))
    if tuned:
        raise click.BadParameter(
            f"{', '.join(tuned)}: the search sets these; bound epochs with --max-epochs",
            param_hint="--param",
        )
    _check_search(params, search)
    arguments = {**params, **search}
    experiment = experiment or TUNE_PIPELINE_NAME
    run_name = run_name or default_run_name(TUNE_PIPELINE_NAME)
    with compiled_package(flags, tuning=True) as package:
        if dry_run:
            plan = dry_run_plan(package, kfp_settings, experiment, run_name, arguments)
            emit(plan, output, show_plan)
            return
        with kfp_client(kfp_settings) as client:
            run = {"params": arguments, "run_name": run_name, "experiment": experiment}
            run["run_id"] = start_run(client, kfp_settings, package, **run)
            report_run(client, kfp_settings, run, wait=wait, timeout=timeout,
                       poll_interval=poll_interval, output=output)  # fmt: skip


def _check_search(params: dict, search: dict) -> None:
    """The search's values checked as every parameter is (the table's ranges), then what Katib
    would refuse once the run is under way (an algorithm's settings, trials with no
    validation split), refused now in one line (components/tune/search.py)."""
    from components.common.errors import InputError
    from components.common.parameters import TUNE_DEFAULTS
    from components.train.config import TrainConfig
    from components.tune.search import Search
    from components.tune.trial import require_validation_split
    from pipeline.params import ParameterError, validate_arguments

    try:
        validate_arguments(search)
    except ParameterError as e:
        raise click.BadParameter(str(e)) from None
    problem = Search(
        search["algorithm"], search["max_epochs"], search["max_trials"], search["parallel_trials"]
    ).problem()
    if problem:
        raise click.UsageError(problem)
    split = params.get("validation_split", TUNE_DEFAULTS["validation_split"])
    try:
        require_validation_split(TrainConfig(validation_split=split))
    except InputError as e:
        raise click.BadParameter(str(e), param_hint="--param") from None

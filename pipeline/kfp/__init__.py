"""The one adapter for the Kubeflow Pipelines API: everything the CLI asks of `kfp.Client`.

Why a package of its own: kfp's private names (attributes with a leading underscore, the
generated `kfp_server_api` package, modules such as `kfp.local.docker_task_handler`) change
without notice between releases. They are used here and nowhere else, each for want of a public
API (the comment at each use says which), and tests/unit/test_kfp_internals.py fails with a
message naming what to re-check when kfp moves one of them.

    settings.py     where the API is and how to authenticate (KfpSettings, host, token file)
    transport.py    bounded waits on every request, and the one health check
    client.py       kfp_client(): a health-checked client whose failures leave as one line
    errors.py       the KFP errors (StepError family) and which failures are worth a retry
    describe.py     a KFP failure (HTTP status, network, TLS) worded as one line
    pipelines.py    upload a pipeline or a version, find an uploaded one
    runs.py         start (a package or an uploaded version), follow, list and retry runs
    recurring.py    recurring runs: create (also following the newest version), list, compare
    local_docker.py kfp.local's docker task handler, for pipeline/containers.py

Nothing here imports click or pipeline.commands; kfp is imported only inside functions, so
`mnist-pipeline --help` never loads it.
"""

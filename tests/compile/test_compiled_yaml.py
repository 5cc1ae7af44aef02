"""Compile tier: read the compiled IR YAML and check what a cluster run will get."""

from __future__ import annotations

import inspect
import json

import pytest
import yaml

from components import images
from components.common import parameters, spec
from pipeline import params
from pipeline.cluster import ClusterOptions, GpuOptions
from pipeline.dag import build_pipeline, compile_pipeline
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY

TASKS = ["download", "unpack-and-upload", "train", "export", "batch-predict"]


def compiled(tmp_path, options: ClusterOptions | None = None) -> dict:
    out = tmp_path / "pipeline.yaml"
    compile_pipeline(str(out), options)
    docs = list(yaml.safe_load_all(out.read_text()))
    return {"spec": docs[0], "platform": docs[1] if len(docs) > 1 else {}, "text": out.read_text()}


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return compiled(tmp_path_factory.mktemp("yaml"))


def all_tasks(pipeline_spec: dict) -> dict:
    """Every task, including those inside the condition's sub-DAG, by task name."""
    tasks = dict(pipeline_spec["root"]["dag"]["tasks"])
    for component in pipeline_spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def executor(pipeline_spec: dict, task: str) -> dict:
    label = all_tasks(pipeline_spec)[task]["componentRef"]["name"].replace("comp-", "exec-")
    return pipeline_spec["deploymentSpec"]["executors"][label]["container"]


def k8s(doc: dict, task: str) -> dict:
    label = all_tasks(doc["spec"])[task]["componentRef"]["name"].replace("comp-", "exec-")
    return doc["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]


def test_five_tasks_in_order(default):
    tasks = all_tasks(default["spec"])
    assert set(TASKS) <= set(tasks)
    deps = {name: set(tasks[name].get("dependentTasks", [])) for name in TASKS}
    assert deps["unpack-and-upload"] == {"download"}
    # and on check-parameters, whose outputs say whether its pod holds a GPU (train_workers)
    assert deps["train"] == {"unpack-and-upload", "check-parameters"}
    assert deps["batch-predict"] == {"export"}
    condition = tasks["condition-1"]
    assert condition["dependentTasks"] == ["train"]


def test_min_accuracy_gate(default):
    condition = all_tasks(default["spec"])["condition-1"]["triggerPolicy"]["condition"]
    assert "train-test_accuracy" in condition and ">=" in condition and "min_accuracy" in condition
    gated = default["spec"]["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(gated) == {"export", "batch-predict", "condition-2"}  # condition-2: deploy


def test_train_requests_gpu_node(default):
    """The defaults; tests/compile/test_cluster_settings.py resolves the run-time values."""
    from tests.compile.test_cluster_settings import train_pod

    assert train_pod(default, 1) == {
        "gpus": ("nvidia.com/gpu", 1),
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    for other in set(TASKS) - {"train"}:
        assert "accelerator" not in executor(default["spec"], other).get("resources", {})


def test_store_secret_configurable_at_compile_time(tmp_path):
    doc = compiled(tmp_path, ClusterOptions(secret_name="my-store"))
    assert k8s(doc, "export")["secretAsEnv"][0]["secretName"] == "my-store"


def test_bad_gpu_options_refused_at_build_time():
    with pytest.raises(ValueError, match="gpu limit"):
        build_pipeline(ClusterOptions(gpu=GpuOptions(limit=0)))


@pytest.mark.parametrize("task", TASKS)
def test_store_credentials_from_secret(default, task):
    (secret,) = k8s(default, task)["secretAsEnv"]
    assert secret["secretName"] == spec.MINIO_SECRET
    mapping = {m["secretKey"]: m["envVar"] for m in secret["keyToEnv"]}
    assert mapping == {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.parametrize("task", TASKS)
def test_resources_on_every_task(default, task):
    resources = executor(default["spec"], task)["resources"]
    assert {"cpuRequest", "cpuLimit", "memoryRequest", "memoryLimit"} <= set(resources)


def test_caching_and_retries(default):
    tasks = all_tasks(default["spec"])
    assert tasks["download"]["cachingOptions"].get("enableCache") is True
    assert tasks["unpack-and-upload"]["cachingOptions"].get("enableCache") is True
    assert not tasks["train"]["cachingOptions"].get("enableCache")
    assert not tasks["batch-predict"]["cachingOptions"].get("enableCache")
    for name in ("download", "unpack-and-upload", "export", "batch-predict"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == 3


def test_images_are_versioned(default):
    for task in TASKS:
        image = executor(default["spec"], task)["image"]
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1]
    assert "gpu" in executor(default["spec"], "train")["image"]


def test_each_step_runs_in_the_image_meant_for_it(default):
    """The steps that need no TensorFlow use the slim image, so a node pulls them in seconds."""
    expected = {
        "download": images.SLIM_IMAGE,
        "unpack-and-upload": images.SLIM_IMAGE,
        "train": images.GPU_IMAGE,
        "export": images.CPU_IMAGE,
        "batch-predict": images.CPU_IMAGE,
    }
    assert {task: executor(default["spec"], task)["image"] for task in TASKS} == expected


def test_no_credentials_in_yaml(default, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    text = compiled(tmp_path)["text"]
    assert FAKE_ACCESS_KEY not in text and FAKE_SECRET_KEY not in text
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    assert not any("secret" in name or "key" in name for name in inputs)


def test_parameters_documented_and_typed(default):
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    signature = inspect.signature(build_pipeline().pipeline_func)
    assert set(inputs) == set(signature.parameters) == set(params.TYPES)
    for name, definition in inputs.items():
        assert definition.get("description"), f"{name} has no description for the UI"
    assert inputs["min_accuracy"]["defaultValue"] == 0.98
    assert inputs["s3_endpoint"]["defaultValue"] == spec.IN_CLUSTER_S3_ENDPOINT
    assert inputs["store_uri"]["defaultValue"] == spec.DEFAULT_STORE


KFP_TYPES = {str: "STRING", bool: "BOOLEAN", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE"}


def test_compiled_inputs_are_the_parameter_table(default):
    """Names, order-free; types, defaults and the descriptions the UI shows: all from one table."""
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == set(parameters.BY_NAME)
    for param in parameters.PARAMETERS:
        got = inputs[param.name]
        assert got["parameterType"] == KFP_TYPES[param.type], param.name
        assert got.get("defaultValue", "") == param.default, param.name
        assert " ".join(got["description"].split()) == param.description, param.name


def test_task_and_output_names_are_the_shared_ones(default):
    """spec.py names the tasks and their outputs once; the compiled pipeline must agree."""
    components = default["spec"]["components"]
    for step in spec.STEPS:
        assert f"comp-{step}" in components, f"no task {step!r}: was a component renamed?"

    def outputs(step: str) -> set[str]:
        defs = components[f"comp-{step}"].get("outputDefinitions", {})
        return set(defs.get("artifacts", {})) | set(defs.get("parameters", {}))

    assert spec.DATASET_OUTPUT in outputs(spec.DOWNLOAD)
    assert spec.DATASET_URI_OUTPUT in outputs(spec.UNPACK_UPLOAD)
    assert {spec.MODEL_OUTPUT, spec.ACCURACY_OUTPUT} <= outputs(spec.TRAIN)
    assert {spec.EXPORTED_OUTPUT, spec.MODEL_URI_OUTPUT} <= outputs(spec.EXPORT)
    assert {spec.PREDICTIONS_OUTPUT, spec.PREDICTIONS_URI_OUTPUT} <= outputs(spec.BATCH_PREDICT)


def test_every_output_is_named_for_what_it_is(default):
    """The KFP UI lists a task's outputs by name: none is kfp's bare `Output` (a plain return
    value), and each output parameter carries the description its docstring gives."""
    for name, component in default["spec"]["components"].items():
        defs = component.get("outputDefinitions", {})
        named = set(defs.get("artifacts", {})) | set(defs.get("parameters", {}))
        assert "Output" not in named, f"{name} has an output named Output"
        for output, definition in defs.get("parameters", {}).items():
            assert definition.get("description"), f"{name}.{output} has no description"


def test_the_ui_can_start_a_run_with_every_default(default):
    """Some KFP UIs cannot submit an empty-string default (kubeflow/pipelines#11515): every
    parameter has a real, non-empty default, and none is a 0 that means "all"."""
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    for name, definition in inputs.items():
        assert "defaultValue" in definition, f"{name} has no default"
        value = definition["defaultValue"]
        assert value != "", f"{name} defaults to an empty string"
    assert inputs["train_limit"]["defaultValue"] == 60000
    assert inputs["serving_endpoint"]["defaultValue"] == spec.IN_STEP
    assert default["spec"]["pipelineInfo"]["displayName"]


def test_train_and_batch_predict_publish_an_html_report(default):
    for task in ("train", "batch-predict"):
        component = default["spec"]["components"][f"comp-{task}"]
        artifact = component["outputDefinitions"]["artifacts"][spec.REPORT_OUTPUT]
        assert artifact["artifactType"]["schemaTitle"] == "system.HTML"


def test_train_retries_a_preempted_pod_and_resumes(default):
    """Sized for spot GPU nodes: the retried pod resumes after its last epoch (checkpoints)."""
    policy = all_tasks(default["spec"])["train"]["retryPolicy"]
    assert policy["maxRetryCount"] == 5 and policy["backoffMaxDuration"] == "900s"
    inputs = default["spec"]["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    assert inputs["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"


def test_deploy_is_optional_after_export(default):
    """Behind `deploy` (false by default): the InferenceService step, after export."""
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    assert inputs["deploy"]["defaultValue"] is False
    tasks = all_tasks(default["spec"])
    condition = tasks["condition-2"]["triggerPolicy"]["condition"]
    assert "deploy" in condition and "true" in condition.lower()
    deploy = tasks["deploy"]
    # inside its condition, export's outputs arrive as the condition's inputs
    assert deploy["inputs"]["parameters"]["model_uri"] == {
        "componentInputParameter": "pipelinechannel--export-model_uri"
    }
    assert deploy["inputs"]["artifacts"]["exported"] == {
        "componentInputArtifact": "pipelinechannel--export-exported"
    }
    assert deploy["retryPolicy"]["maxRetryCount"] == 3
    assert executor(default["spec"], "deploy")["image"] == images.CPU_IMAGE
    # it reads the store (is the version complete?) at the pipeline's endpoint, with the Secret
    assert deploy["inputs"]["parameters"]["s3_endpoint"] == {
        "componentInputParameter": "pipelinechannel--s3_endpoint"
    }
    (secret,) = k8s(default, "deploy")["secretAsEnv"]
    assert secret["secretName"] == spec.MINIO_SECRET


def test_multi_worker_training_is_a_parameter_with_the_workers_pod_compiled_in(default):
    inputs = default["spec"]["root"]["inputDefinitions"]["parameters"]
    assert inputs["train_workers"]["defaultValue"] == 1
    params = all_tasks(default["spec"])["train"]["inputs"]["parameters"]
    assert params["train_workers"]["componentInputParameter"] == "train_workers"
    pod = json.loads(params["worker_pod"]["runtimeValue"]["constant"])
    assert pod["image"] == images.GPU_IMAGE
    assert pod["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("task", [*TASKS, spec.DEPLOY])
def test_every_step_runs_as_the_images_non_root_user(default, task):
    """What kfp-kubernetes can say of a step's security (the KFP backend adds no privilege
    escalation, no capabilities and the RuntimeDefault seccomp profile itself)."""
    context = k8s(default, task)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert int(context["runAsUser"]) == int(context["runAsGroup"]) == 10001  # docker/Dockerfile


def test_the_tuning_pipelines_steps_run_as_non_root_too(tmp_path):
    out = tmp_path / "tune.yaml"
    compile_pipeline(str(out), tuning=True)
    executors = list(yaml.safe_load_all(out.read_text()))[1]["platforms"]["kubernetes"]
    contexts = [e.get("securityContext") for e in executors["deploymentSpec"]["executors"].values()]
    assert contexts and all(c and c["runAsNonRoot"] is True for c in contexts)


@pytest.mark.parametrize("tuning", [False, True])
def test_every_parameter_is_checked_by_the_first_task_before_anything_runs(tmp_path, tuning):
    out = tmp_path / "pipeline.yaml"
    compile_pipeline(str(out), tuning=tuning)
    pipeline_spec = next(yaml.safe_load_all(out.read_text()))
    tasks = all_tasks(pipeline_spec)
    checked = tasks[spec.CHECK_PARAMETERS]
    assert "dependentTasks" not in checked  # the first task
    assert tasks[spec.DOWNLOAD]["dependentTasks"] == [spec.CHECK_PARAMETERS]
    inputs = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    wired = checked["inputs"]["parameters"]
    gpu = wired.pop("train_gpu")  # the train pod's GPU settings, compiled in: not a parameter
    assert "runtimeValue" in gpu
    assert {name: wire["componentInputParameter"] for name, wire in wired.items()} == {
        name: name for name in inputs
    }


def test_the_tuned_model_holds_out_only_the_main_pipelines_calibration_split(tmp_path):
    """Katib's trials score a held-out validation split (the pipeline's validation_split); the
    final train task, with the best trial's values, holds out only what the main pipeline does
    by default (0.05), to calibrate its probabilities."""
    out = tmp_path / "tune.yaml"
    compile_pipeline(str(out), tuning=True)
    tasks = all_tasks(next(yaml.safe_load_all(out.read_text())))
    assert tasks[spec.TUNE]["inputs"]["parameters"]["validation_split"] == {
        "componentInputParameter": "validation_split"
    }
    split = tasks[spec.TRAIN]["inputs"]["parameters"]["validation_split"]
    assert split["runtimeValue"]["constant"] == 0.05

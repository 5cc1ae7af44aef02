"""The text a Kubeflow UI user reads, taken from the compiled YAML of both pipelines.

Checked in the real KFP frontend (kubeflow/pipelines 7b70c7b9, mock backend): the Pipelines
list and the pipeline's summary render the description as Markdown (markdown-to-jsx), so
`learning_rate, batch_size` showed as "learningrate, batchsize" with "rate, batch" in italics.
A task's side panel lists its outputs by name and type; the Pipeline Spec tab shows the rest.
"""

from __future__ import annotations

import pytest
import yaml

from components.common import spec
from pipeline.dag import compile_pipeline

# What Markdown would turn into emphasis, code, links, HTML or headings instead of showing it.
MARKDOWN_MARKERS = set("_*`[]<>#~")


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict:
    """The pipeline spec of each pipeline, by whether it is the tuning one."""
    folder = tmp_path_factory.mktemp("yaml")
    compiled = {}
    for tuning in (False, True):
        out = folder / f"tuning-{tuning}.yaml"
        compile_pipeline(str(out), tuning=tuning)
        compiled[tuning] = next(yaml.safe_load_all(out.read_text()))
    return compiled


@pytest.fixture(params=[False, True], ids=["mnist-digits", "mnist-tune"])
def pipeline_spec(request, specs) -> dict:
    return specs[request.param]


def test_the_description_reads_the_same_rendered_as_markdown(pipeline_spec):
    """`upload` sends this text as the pipeline's and the version's description."""
    description = pipeline_spec["pipelineInfo"]["description"]
    assert description
    assert not MARKDOWN_MARKERS & set(description), description


def test_every_output_parameter_is_named_and_described(pipeline_spec):
    """In both pipelines (the tune step's outputs are the tuning pipeline's alone)."""
    for name, component in pipeline_spec["components"].items():
        for output, definition in (
            component.get("outputDefinitions", {}).get("parameters", {}).items()
        ):
            assert output != "Output", f"{name} has an output named Output"
            assert definition.get("description"), f"{name}.{output} has no description"


def test_the_tune_steps_outputs_are_the_best_trials_values(specs):
    """What the tune task's side panel lists: names and types; and what each one is."""
    outputs = specs[True]["components"][f"comp-{spec.TUNE}"]["outputDefinitions"]
    assert {name: d["parameterType"] for name, d in outputs["parameters"].items()} == {
        "learning_rate": "NUMBER_DOUBLE",
        "batch_size": "NUMBER_INTEGER",
        "epochs": "NUMBER_INTEGER",
    }
    for name, definition in outputs["parameters"].items():
        assert "best trial" in definition.get("description", ""), name
    assert outputs["artifacts"][spec.REPORT_OUTPUT]["artifactType"]["schemaTitle"] == "system.HTML"

"""Compile tier: batch-predict over pods (`compile --shards N`), read from the compiled YAML.

plan-shards -> ParallelFor(predict-shard) -> merge-shards in place of batch-predict, inside the
accuracy gate; with shards = 1 the pipeline is exactly the one compiled without the option.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from components import images
from components.common import spec
from pipeline.cli import main
from pipeline.cluster import ClusterOptions
from tests.compile.test_compiled_yaml import all_tasks, compiled, executor, k8s
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY

SHARDED = (spec.PLAN_SHARDS, spec.PREDICT_SHARD, spec.MERGE_SHARDS)


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    return compiled(tmp_path_factory.mktemp("yaml"), ClusterOptions(shards=8, shard_parallelism=4))


def loop_of(pipeline_spec: dict) -> dict:
    (loop,) = [
        task
        for task in all_tasks(pipeline_spec).values()
        if task["taskInfo"]["name"] == spec.SHARD_LOOP
    ]
    return loop


def test_the_shards_run_in_a_parallel_for_over_the_plans_manifests(eight):
    loop = loop_of(eight["spec"])
    assert loop["iteratorPolicy"] == {"parallelismLimit": 4}
    items = loop["parameterIterator"]["items"]["inputParameter"]
    source = loop["inputs"]["parameters"][items]["taskOutputParameter"]
    assert source == {"outputParameterKey": "Output", "producerTask": spec.PLAN_SHARDS}
    body = eight["spec"]["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert list(body) == [spec.PREDICT_SHARD]
    shard_inputs = body[spec.PREDICT_SHARD]["inputs"]["parameters"]
    item = {"componentInputParameter": loop["parameterIterator"]["itemInput"]}
    assert shard_inputs["manifest_uri"] == item
    # nothing but the item comes from another task's output: kfp.local would replace it
    passed_in = loop["inputs"]["parameters"]
    from_tasks = [name for name, value in passed_in.items() if "taskOutputParameter" in value]
    assert from_tasks == [items]


def test_plan_loop_and_merge_replace_batch_predict_in_order(eight):
    tasks = all_tasks(eight["spec"])
    assert spec.BATCH_PREDICT not in tasks
    loop_name = next(name for name, task in tasks.items() if task is loop_of(eight["spec"]))
    assert tasks[spec.PLAN_SHARDS]["dependentTasks"] == ["export"]
    assert set(tasks[spec.MERGE_SHARDS]["dependentTasks"]) == {
        "export",
        loop_name,
        spec.PLAN_SHARDS,
    }
    plan_inputs = tasks[spec.PLAN_SHARDS]["inputs"]["parameters"]
    assert plan_inputs["shards"] == {"runtimeValue": {"constant": 8}}
    merge_outputs = eight["spec"]["components"]["comp-merge-shards"]["outputDefinitions"]
    assert set(merge_outputs["artifacts"]) == {spec.PREDICTIONS_OUTPUT, spec.REPORT_OUTPUT}
    assert set(merge_outputs["parameters"]) == {spec.PREDICTIONS_URI_OUTPUT}


@pytest.mark.parametrize("task", SHARDED)
def test_each_sharded_task_gets_the_cpu_image_its_resources_and_the_store_secret(eight, task):
    container = executor(eight["spec"], task)
    assert container["image"] == images.CPU_IMAGE
    assert container["resources"]["cpuLimit"] > 0 and container["resources"]["memoryLimit"] > 0
    secret = k8s(eight, task)["secretAsEnv"][0]
    assert secret["secretName"] == spec.MINIO_SECRET
    assert FAKE_ACCESS_KEY not in eight["text"] and FAKE_SECRET_KEY not in eight["text"]


def test_one_shard_compiles_the_pipeline_of_today(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    default = compiled(tmp_path / "a")
    one = compiled(tmp_path / "b", ClusterOptions(shards=1, shard_parallelism=3))
    assert one["text"] == default["text"]
    assert spec.BATCH_PREDICT in all_tasks(one["spec"])
    assert not set(SHARDED) & set(all_tasks(one["spec"]))


def test_images_per_shard_alone_compiles_the_loop_and_passes_the_target(tmp_path):
    doc = compiled(tmp_path, ClusterOptions(images_per_shard=100_000))["spec"]
    assert loop_of(doc)
    plan_inputs = all_tasks(doc)[spec.PLAN_SHARDS]["inputs"]["parameters"]
    assert plan_inputs["images_per_shard"] == {"runtimeValue": {"constant": 100_000}}
    assert plan_inputs["shards"] == {"runtimeValue": {"constant": 1}}


def test_no_parallelism_limit_by_default(tmp_path):
    loop = loop_of(compiled(tmp_path, ClusterOptions(shards=3))["spec"])
    assert "iteratorPolicy" not in loop


def test_the_cli_compiles_the_loop_and_refuses_zero_shards(tmp_path):
    out = tmp_path / "p.yaml"
    runner = CliRunner()
    result = runner.invoke(main, ["compile", str(out), "--shards", "8"])
    assert result.exit_code == 0, result.output
    assert loop_of(yaml.safe_load_all(out.read_text()).__next__())
    refused = runner.invoke(main, ["compile", str(tmp_path / "q.yaml"), "--shards", "0"])
    assert refused.exit_code == 2 and "'--shards': 0 is not in the range" in refused.output


def test_merge_parts_reaches_the_merge_task_and_needs_shards(tmp_path):
    """`--merge-parts`: merge-shards publishes the manifest of the parts (merge.py); off, one
    CSV. Without shards there are no parts to list: a usage error, not a flag ignored."""
    tasks = all_tasks(compiled(tmp_path, ClusterOptions(shards=3, merge_parts=True))["spec"])
    assert tasks[spec.MERGE_SHARDS]["inputs"]["parameters"]["parts"] == {
        "runtimeValue": {"constant": True}
    }
    runner = CliRunner()
    result = runner.invoke(main, ["compile", str(tmp_path / "p.yaml"), "--shards", "8"])
    assert result.exit_code == 0, result.output
    doc = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    merge = all_tasks(doc)[spec.MERGE_SHARDS]
    assert merge["inputs"]["parameters"]["parts"] == {"runtimeValue": {"constant": False}}
    refused = runner.invoke(main, ["compile", str(tmp_path / "q.yaml"), "--merge-parts"])
    assert refused.exit_code == 2 and "--merge-parts lists the shards' CSVs" in refused.output
    assert not (tmp_path / "q.yaml").exists()

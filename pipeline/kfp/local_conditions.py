"""The hook into kfp.local's condition evaluation that named task outputs need.

The Kubeflow UI lists a task's outputs by name (train's `test_accuracy`, export's `model_uri`),
and the accuracy gate compares train's `test_accuracy` in a `dsl.If`. kfp 2.17.3's local
orchestrator resolves a condition's operand `pipelinechannel--<task>-<output>` only when the
output is kfp's bare `Output` (a plain return value); any other name is taken for a parent
input, not found, and the condition is False, so the gated steps never run. kfp.local offers no
public way to resolve them, so for the duration of a run `ConditionEvaluator`'s resolver first
tries the task outputs `<task>`.`<output>` for each split of the reference at a `-`, then falls
back to kfp's own. tests/unit/test_kfp_internals.py pins the method, and a local run of the
DAG (tests/local) shows the gate open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "pipelinechannel--"


def task_output(reference: str, io_store) -> tuple[bool, object]:
    """(found, value) of the task output that `pipelinechannel--<task>-<output>` names; task
    names contain `-` and output names may not (they are Python identifiers), so the split is
    at the last `-` whose right side is an identifier."""
    name = reference.removeprefix(PREFIX)
    task, sep, output = name.rpartition("-")
    if not sep or not task or not output.isidentifier():
        return False, None
    try:
        return True, io_store.get_task_output(task, output)
    except (KeyError, ValueError):
        return False, None


@contextmanager
def named_outputs_in_conditions() -> Iterator[None]:
    """Within the block, kfp.local's conditions can compare named task outputs."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator  # private: no public hook

    evaluator = enhanced_dag_orchestrator.ConditionEvaluator
    original = evaluator.__dict__["_resolve_pipeline_channel"]

    def resolve(channel_ref: str, io_store):
        found, value = task_output(channel_ref, io_store)
        return value if found else original.__func__(channel_ref, io_store)

    evaluator._resolve_pipeline_channel = staticmethod(resolve)
    try:
        yield
    finally:
        evaluator._resolve_pipeline_channel = original

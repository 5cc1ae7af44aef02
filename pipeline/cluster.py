"""Kubernetes settings the compiled pipeline carries (kfp-kubernetes); kfp.local ignores them.

Everything a task needs from the cluster is requested here, through one helper per concern, so the
DAG reads as the data flow and the cluster policy can be reviewed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from components.common import spec
from components.common.errors import InputError

if TYPE_CHECKING:  # kfp is imported only where a task is configured: `--help` stays fast
    from kfp.dsl import PipelineTask


@dataclass(frozen=True)
class GpuOptions:
    """How the train task reaches a GPU node; set at compile time."""

    enabled: bool = True
    accelerator: str = "nvidia.com/gpu"
    limit: int = 1
    node_label_key: str = "nvidia.com/gpu.present"
    node_label_value: str = "true"
    toleration_key: str = "nvidia.com/gpu"

    def validate(self) -> None:
        if self.enabled and self.limit < 1:
            raise InputError(f"gpu limit must be at least 1, got {self.limit}")
        if self.enabled and not self.node_label_key.strip():
            raise InputError("--gpu-node-label must be KEY=VALUE with a non-empty KEY")
        if self.enabled and not self.toleration_key.strip():
            raise InputError("--gpu-toleration-key must not be empty (or use --no-gpu)")


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# Sized from local runs on the full data set (peak RSS: train ~3 GB, the others < 1.5 GB).
RESOURCES = {
    spec.CHECK_PARAMETERS: Resources("100m", "500m", "256Mi", "1Gi"),
    spec.DOWNLOAD: Resources("250m", "1", "256Mi", "1Gi"),
    spec.UNPACK_UPLOAD: Resources("250m", "1", "512Mi", "2Gi"),
    spec.TRAIN: Resources("2", "8", "4Gi", "12Gi"),
    spec.EXPORT: Resources("500m", "2", "2Gi", "4Gi"),
    spec.BATCH_PREDICT: Resources("1", "4", "2Gi", "6Gi"),
    spec.PLAN_SHARDS: Resources("250m", "1", "512Mi", "2Gi"),  # a listing page at a time
    spec.PREDICT_SHARD: Resources("1", "4", "2Gi", "6Gi"),  # as batch-predict, per shard
    spec.MERGE_SHARDS: Resources("250m", "1", "512Mi", "2Gi"),  # parts streamed to one CSV
    spec.DEPLOY: Resources("100m", "1", "512Mi", "2Gi"),
    spec.TUNE: Resources("100m", "1", "256Mi", "1Gi"),
}


@dataclass(frozen=True)
class ClusterOptions:
    gpu: GpuOptions = field(default_factory=GpuOptions)
    secret_name: str = spec.MINIO_SECRET
    # Pod retries are for what a pod cannot survive (eviction, a node lost); the steps retry
    # transient network faults themselves. KFP cannot retry by exit code, so a local run,
    # where no pod is evicted, turns them off: a 404 then fails at once, not after 3.5 min.
    pod_retries: bool = True
    # Batch-predict over this many pods (1: the one batch-predict task), or over as many as
    # hold `images_per_shard` images each (decided when the images are listed; at most
    # `shards` when that is above 1), at most `shard_parallelism` at a time (0: no limit).
    shards: int = 1
    images_per_shard: int = 0
    shard_parallelism: int = 0
    # A sharded run publishes predictions.parts.json, a manifest of the shards' CSVs, instead
    # of joining them into one predictions.csv (for runs too large for one file).
    merge_parts: bool = False

    @property
    def sharded(self) -> bool:
        return self.shards > 1 or self.images_per_shard > 0

    def validate(self) -> None:
        self.gpu.validate()
        if not self.secret_name.strip():
            raise InputError("--secret-name must not be empty: name the store's Secret")
        if not 1 <= self.shards <= spec.MAX_SHARDS:
            raise InputError(f"--shards must be 1 to {spec.MAX_SHARDS}, got {self.shards}")
        if self.images_per_shard < 0:
            raise InputError(f"--images-per-shard must be 0 or more, got {self.images_per_shard}")
        if self.shard_parallelism < 0:
            raise InputError(f"--shard-parallelism must be 0 or more, got {self.shard_parallelism}")
        if self.merge_parts and not self.sharded:
            raise InputError(
                "--merge-parts lists the shards' CSVs: give --shards N or --images-per-shard K"
            )


def gpu_settings(gpu: GpuOptions) -> dict:
    """The GPU limit, node selector and tolerations of a pod that trains, as plain pod-spec
    values; empty with --no-gpu. The train task's are decided at run time from these
    (components.common.placement.py)."""
    if not gpu.enabled:
        return {}
    return {
        "limit": gpu.limit,
        "nodeSelector": {gpu.node_label_key: gpu.node_label_value},
        "tolerations": [{"key": gpu.toleration_key, "operator": "Exists", "effect": "NoSchedule"}],
    }


def request_gpu(task: PipelineTask, gpu: GpuOptions, placement: PipelineTask) -> PipelineTask:
    """The one place the train task asks for a GPU: the accelerator type compiled in, and the
    limit, node selector and tolerations that `placement` (the check-parameters task) outputs
    for this run: gpu_settings' when the task trains itself, none when it launches a TFJob."""
    from kfp import kubernetes

    if not gpu.enabled:
        return task
    chosen = placement.outputs
    task.set_accelerator_type(gpu.accelerator).set_accelerator_limit(chosen[spec.TRAIN_GPUS])
    kubernetes.add_node_selector_json(task, chosen[spec.TRAIN_NODE_SELECTOR])
    kubernetes.add_toleration_json(task, chosen[spec.TRAIN_TOLERATIONS])
    return task


def use_store_credentials(task: PipelineTask, secret_name: str) -> PipelineTask:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the Secret KFP's MinIO uses."""
    from kfp import kubernetes

    kubernetes.use_secret_as_env(
        task, secret_name=secret_name, secret_key_to_env=dict(spec.SECRET_KEY_TO_ENV)
    )
    return task


def trial_pod(options: ClusterOptions) -> dict:
    """The pod settings of a Katib trial or a TFJob replica: what request_gpu,
    use_store_credentials and RESOURCES give the train task, as plain pod-spec fields (Katib or
    the Training Operator makes those pods, not KFP)."""
    from components.images import GPU_IMAGE

    r = RESOURCES[spec.TRAIN]
    resources = {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }
    pod = {
        "image": GPU_IMAGE,
        "resources": resources,
        "env": [
            {"name": env, "valueFrom": {"secretKeyRef": {"name": options.secret_name, "key": key}}}
            for key, env in spec.SECRET_KEY_TO_ENV.items()
        ],
    }
    gpu = gpu_settings(options.gpu)
    if gpu:
        resources["limits"][options.gpu.accelerator] = str(gpu["limit"])
        pod["nodeSelector"], pod["tolerations"] = gpu["nodeSelector"], gpu["tolerations"]
    return pod


def run_as_image_user(task: PipelineTask) -> PipelineTask:
    """The step's container runs as the images' own non-root user (UID 10001), as every pod
    this project starts does (components/common/kube.py). kfp-kubernetes sets no more than the
    identity: the KFP backend adds allowPrivilegeEscalation=false, drops all capabilities and
    sets the RuntimeDefault seccomp profile itself (kfp.kubernetes.set_security_context)."""
    from kfp import kubernetes

    from components.common.kube import RUN_AS

    return kubernetes.set_security_context(
        task, run_as_user=RUN_AS, run_as_group=RUN_AS, run_as_non_root=True
    )


def set_resources(task: PipelineTask, name: str) -> PipelineTask:
    r = RESOURCES[name]
    return (
        task.set_cpu_request(r.cpu_request)
        .set_cpu_limit(r.cpu_limit)
        .set_memory_request(r.memory_request)
        .set_memory_limit(r.memory_limit)
    )


def retry_preemption(task: PipelineTask) -> PipelineTask:
    """The train step on spot or preemptible GPU nodes: a pod killed with the node comes back,
    after the node pool has had time to replace the node, and resumes after its last epoch
    (components/train/checkpoints.py). Five retries over up to about half an hour: the wait
    doubles each time (KFP's backoff factor is 2 unless told otherwise), at most 15 minutes."""
    return task.set_retry(num_retries=5, backoff_duration="60s", backoff_max_duration="900s")


def retry_network_io(task: PipelineTask) -> PipelineTask:
    """Steps that talk to the network retry a failed pod with exponential backoff: 30 s, then
    doubling (KFP's default factor), at most 10 minutes."""
    return task.set_retry(num_retries=3, backoff_duration="30s", backoff_max_duration="600s")

"""Where the train task's own pod runs, decided at run time from `train_workers`.

With one worker the train task trains in its pod, which gets the GPU settings compiled into the
pipeline (pipeline/cluster.py gpu_settings). With two or more it only creates a TFJob and waits
for it: the replicas get the GPUs (pipeline/cluster.py trial_pod), and the waiting pod asks for
none, so N replicas hold N GPUs, not N+1. `train_workers` is a run-time parameter, so the first
task (check-parameters) computes this and the train task's accelerator limit, node selector and
tolerations are read from its outputs. Free of kfp: the step runs it.
"""

from __future__ import annotations


def train_placement(train_workers: int, gpu: dict) -> tuple[int, dict, list]:
    """(GPUs, node selector, tolerations) of the train task's pod: `gpu`'s (`limit`,
    `nodeSelector`, `tolerations`) when it trains itself, none when it launches a TFJob."""
    if train_workers > 1 or not gpu:
        return 0, {}, []
    return int(gpu["limit"]), dict(gpu["nodeSelector"]), list(gpu["tolerations"])

"""The mutations a review made by hand, one at a time, each of which the tests must catch: the
fast part of mutation testing, run with the suite (`make mutation` runs mutmut over all of it).

Each mutant is an exact edit of one source file. It is applied to a copy of the repository in a
temporary folder, and the tests that cover that file run there (`pytest -x`, those files only),
in a subprocess that imports the copy: they must fail on a test (pytest's exit status 1), not on
an import or a collection error. When a file no longer holds the text a mutant replaces, the
mutant fails with "no longer applies": rewrite it against the new code, never drop it. A mutant
may list variants (the same mistake in two versions of the code); the first that applies is
used. Two run at a time; `pytest -m mutants` runs only these.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.mutants

Edit = tuple[str, str]  # (text that must occur exactly once, its replacement)
COPIED = ("components", "pipeline", "tests", "manifests", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc", "mutants")
WORKERS = 2


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    variants: tuple[tuple[Edit, ...], ...]
    tests: tuple[str, ...]


KSERVE_TESTS = ("tests/unit/test_kserve_deploy.py", "tests/unit/test_runtime_pods_restricted.py")
KATIB_TESTS = ("tests/unit/test_katib_tune.py", "tests/unit/test_runtime_pods_restricted.py")
TFJOB_TESTS = ("tests/unit/test_tfjob.py",)
GPU_TESTS = (
    "tests/unit/test_trial_pod.py",
    "tests/unit/test_runtime_pods_restricted.py",
    "tests/unit/test_katib_tune.py",
    "tests/unit/test_tfjob.py",
)
CHECKPOINT_TESTS = ("tests/unit/test_checkpoints.py",)
KSERVE, KATIB = "components/deploy/kserve.py", "components/tune/katib.py"
DISTRIBUTED, CLUSTER = "components/train/distributed.py", "pipeline/cluster.py"
CHECKPOINTS = "components/train/checkpoints.py"

POINTER = (
    '        latest = {"epoch": epoch, "folder": folder}\n'
    "        self.store.put_bytes(join(self.prefix, LATEST), json.dumps(latest).encode())\n"
)

MUTANTS = (
    Mutant(
        "kserve-model-format-onnx",
        KSERVE,
        ((('"modelFormat": {"name": "tensorflow"}', '"modelFormat": {"name": "onnx"}'),),),
        KSERVE_TESTS,
    ),
    Mutant(
        "kserve-storage-uri-without-s3-scheme",
        KSERVE,
        (
            (('"storageUri": models_uri,', '"storageUri": models_uri.removeprefix("s3://"),'),),
            (  # the version folder in predictor.storageUris, since KServe 0.16 is required
                (
                    '{"uri": version_uri.rstrip("/") + "/",',
                    '{"uri": version_uri.removeprefix("s3://").rstrip("/") + "/",',
                ),
            ),
        ),
        KSERVE_TESTS,
    ),
    Mutant(
        "kserve-canary-skipped-after-ready",
        KSERVE,
        ((("classes = canary(url, canary_images(warmup_file))", "classes = []"),),),
        KSERVE_TESTS,
    ),
    Mutant(
        "kserve-service-account-dropped",
        KSERVE,
        ((('{"serviceAccountName": SERVICE_ACCOUNT, "minReplicas": 1,', '{"minReplicas": 1,'),),),
        KSERVE_TESTS,
    ),
    Mutant(
        "katib-template-batch-size-renamed",
        KATIB,
        (
            (
                (
                    '"--batch-size=${trialParameters.batchSize}"',
                    '"--batch-size=${trialParameters.batch_size}"',
                ),
            ),
            (  # the template's flags made from search.REFERENCES
                (
                    "for name, ref in REFERENCES.items()\n    ]",
                    'for name, ref in {**REFERENCES, "batch_size": "batch_size"}.items()\n    ]',
                ),
            ),
        ),
        KATIB_TESTS,
    ),
    Mutant(
        "katib-trial-parameters-wrong-names",
        KATIB,
        (
            (
                (
                    '{"name": ref, "reference": n, "description": n}',
                    '{"name": n, "reference": ref, "description": n}',
                ),
            ),
            (
                (
                    '{"name": ref, "reference": name, "description": name}',
                    '{"name": name, "reference": ref, "description": name}',
                ),
            ),
        ),
        KATIB_TESTS,
    ),
    Mutant(
        "distributed-every-replica-writes-the-model",
        DISTRIBUTED,
        ((("if not is_chief(kind, index, cluster):", "if False:"),),),
        TFJOB_TESTS,
    ),
    Mutant(
        "distributed-loss-over-one-replicas-batch",
        DISTRIBUTED,
        (
            (
                (
                    "global_batch_size=cfg.batch_size)",
                    "global_batch_size=cfg.batch_size // replicas)",
                ),
            ),
            (  # the step made by train_step(strategy, model, optimizer, global_batch)
                (
                    "global_batch_size=global_batch)",
                    "global_batch_size=global_batch // strategy.num_replicas_in_sync)",
                ),
            ),
        ),
        TFJOB_TESTS,
    ),
    Mutant(
        "trial-pod-loses-the-gpu-node-selector",
        CLUSTER,
        (
            (
                (
                    'pod["nodeSelector"], pod["tolerations"] = gpu["nodeSelector"], gpu["tolerations"]',  # noqa: E501
                    'pod["tolerations"] = gpu["tolerations"]',
                ),
            ),
        ),
        GPU_TESTS,
    ),
    Mutant(
        "trial-pod-ignores-the-gpu-limit",
        CLUSTER,
        (
            (
                (
                    'resources["limits"][options.gpu.accelerator] = str(gpu["limit"])',
                    'resources["limits"][options.gpu.accelerator] = "1"',
                ),
            ),
        ),
        GPU_TESTS,
    ),
    Mutant(  # not one of the review's twelve: the TFJob launcher's GPU (issue 23)
        "tfjob-launcher-holds-a-gpu",
        "components/common/placement.py",
        ((("if train_workers > 1 or not gpu:", "if not gpu:"),),),
        ("tests/compile/test_cluster_settings.py",),
    ),
    Mutant(
        "checkpoints-previous-epoch-folder-never-removed",
        CHECKPOINTS,
        ((("        self._rotate(epoch)\n", ""),),),
        CHECKPOINT_TESTS,
    ),
    Mutant(
        "checkpoints-pointer-written-before-its-files",
        CHECKPOINTS,
        (((POINTER, ""), ("        files = []\n", POINTER + "        files = []\n")),),
        CHECKPOINT_TESTS,
    ),
)


class NoLongerApplies(Exception):
    pass


def mutated(source: str, mutant: Mutant) -> str:
    """`source` with the first variant whose every edit finds its text exactly once."""
    for edits in mutant.variants:
        text = source
        for old, new in edits:
            if text.count(old) != 1:
                break
            text = text.replace(old, new)
        else:
            return text
    olds = [old for edits in mutant.variants for old, _ in edits]
    raise NoLongerApplies(
        f"mutant {mutant.name} no longer applies: update it ({mutant.file} does not hold "
        f"exactly one of {olds!r})"
    )


def copy_of_repo(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=IGNORED)
        else:
            shutil.copy2(source, dest / name)
    return dest


def run_mutant(mutant: Mutant, root: Path) -> subprocess.CompletedProcess:
    copy = copy_of_repo(root / mutant.name)
    target = copy / mutant.file
    target.write_text(mutated(target.read_text(), mutant))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MUTANT_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         *mutant.tests],
        cwd=copy, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> Iterator[dict[str, Future]]:
    """The selected mutants' test runs, started together, WORKERS at a time, slowest first."""
    selected = {
        item.callspec.params["mutant"].name
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    root = tmp_path_factory.mktemp("mutants")
    slowest_first = sorted(
        (m for m in MUTANTS if m.name in selected), key=lambda m: "test_tfjob.py" not in m.tests
    )
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    futures = {m.name: pool.submit(run_mutant, m, root) for m in slowest_first}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def test_a_copy_of_the_repository_imports_itself(tmp_path):
    """What makes a mutant in the copy count: the copy's code is what its tests import."""
    copy = copy_of_repo(tmp_path / "copy")
    out = subprocess.run(
        [sys.executable, "-c", "import components, pipeline, tests; "
         "print(components.__file__, pipeline.__file__, tests.__file__)"],
        cwd=copy, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(f).is_relative_to(copy) for f in out), out


def test_a_mutant_that_no_longer_applies_says_so():
    ghost = Mutant("ghost", "x.py", ((("not there", "x"),),), ())
    with pytest.raises(NoLongerApplies, match="mutant ghost no longer applies: update it"):
        mutated("print('hello')\n", ghost)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_tests_kill_the_known_mutant(mutant, outcomes):
    try:
        run = outcomes[mutant.name].result()
    except NoLongerApplies as e:
        pytest.fail(str(e))
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode != 0, f"{mutant.name} survived {' '.join(mutant.tests)}:\n{tail}"
    assert run.returncode == 1, f"{mutant.name}: the tests broke, not failed:\n{tail}"

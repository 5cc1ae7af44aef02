"""The model sync for TF Serving, against a local folder and a real S3 endpoint (moto)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import store as st
from components.common import spec
from components.serving_sync import sync
from components.store import ObjectInfo
from tests.conftest import FAKE_SECRET_KEY

REPO = Path(__file__).resolve().parents[2]
# The files an exported version holds; saved_model.pb is published last.
VERSION_FILES = {
    "assets.extra/tf_serving_warmup_requests": b"warmup",
    "fingerprint.pb": b"fp",
    "variables/variables.data-00000-of-00001": b"weights" * 100,
    "variables/variables.index": b"index",
}


def publish(store, version: int | str, complete: bool = True) -> None:
    """Write a version the way the export step does: everything, then saved_model.pb."""
    for rel, data in VERSION_FILES.items():
        store.put_bytes(f"{spec.MODELS_PREFIX}/{version}/{rel}", data)
    if complete:
        store.put_bytes(
            f"{spec.MODELS_PREFIX}/{version}/saved_model.pb", b"graph-%s" % str(version).encode()
        )


def names(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir())


@pytest.fixture(params=["local", "s3"])
def model_store(request, tmp_path):
    if request.param == "local":
        return st.open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return st.open_store(f"s3://{bucket}/mnist", request.getfixturevalue("s3_env"))


def test_copies_complete_versions_and_skips_partial(model_store, tmp_path):
    dest = tmp_path / "models" / "mnist"
    publish(model_store, 1)
    publish(model_store, 2, complete=False)  # the export step is still writing it
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=3) == [1]
    assert names(dest) == ["1"]
    for rel, data in VERSION_FILES.items():
        assert (dest / "1" / rel).read_bytes() == data
    assert (dest / "1" / "saved_model.pb").read_bytes() == b"graph-1"
    assert (dest / "1").stat().st_mode & 0o777 == 0o755  # readable by TF Serving's user

    model_store.put_bytes(f"{spec.MODELS_PREFIX}/2/saved_model.pb", b"graph-2")  # now complete
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=3) == [2]
    assert names(dest) == ["1", "2"]


def test_rerun_is_idempotent_and_downloads_nothing(model_store, tmp_path, monkeypatch):
    dest = tmp_path / "m"
    publish(model_store, 1)
    sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    monkeypatch.setattr(model_store, "get_file", lambda *a: pytest.fail("downloaded again"))
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2) == []
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


def test_keeps_newest_and_never_downloads_what_it_would_prune(model_store, tmp_path, monkeypatch):
    dest = tmp_path / "m"
    for version in (1, 2, 3, 10):  # 10 > 3 numerically, though not as text
        publish(model_store, version)
    fetched = []
    real_get = model_store.get_file
    monkeypatch.setattr(
        model_store, "get_file", lambda key, target: (fetched.append(key), real_get(key, target))
    )
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2) == [3, 10]
    assert names(dest) == ["10", "3"]
    assert not [k for k in fetched if "/1/" in k or "/2/" in k]

    publish(model_store, 11)
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2) == [11]
    assert names(dest) == ["10", "11"]  # 3 pruned, after 11 was in place


def test_download_goes_to_hidden_folder_on_same_volume(model_store, tmp_path, monkeypatch):
    dest = tmp_path / "m"
    publish(model_store, 4)
    seen = []
    real_get = model_store.get_file

    def spy(key, target):
        target = Path(target)
        hidden = target.relative_to(dest).parts[0]
        seen.append((hidden, (dest / "4").exists()))
        real_get(key, target)

    monkeypatch.setattr(model_store, "get_file", spy)
    sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=1)
    assert len(seen) == len(VERSION_FILES) + 1
    for hidden, visible_yet in seen:
        assert hidden.startswith(".") and sync.parse_version(hidden) is None
        assert not visible_yet  # TF Serving sees nothing until the rename
    assert names(dest) == ["4"]


def test_failed_download_leaves_nothing_and_does_not_block_others(
    model_store, tmp_path, monkeypatch
):
    dest = tmp_path / "m"
    publish(model_store, 1)
    publish(model_store, 2)
    real_get = model_store.get_file

    def flaky(key, target):
        if "/2/variables/" in key:
            raise st.StoreError(f"download of {key} failed: connection reset")
        real_get(key, target)

    monkeypatch.setattr(model_store, "get_file", flaky)
    with pytest.raises(sync.SyncError, match="version 2: .*connection reset"):
        sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2)
    assert names(dest) == ["1"]  # no half-copied 2, no temporary folder left

    monkeypatch.setattr(model_store, "get_file", real_get)
    assert sync.sync_once(model_store, spec.MODELS_PREFIX, dest, keep=2) == [2]


def test_ignores_names_tf_serving_would_not_load(tmp_path):
    store = st.open_store(str(tmp_path / "store"))
    for name in ("latest", "007", "v3", "-1"):
        publish(store, name)
    store.put_bytes(f"{spec.MODELS_PREFIX}/5/assets/saved_model.pb", b"nested, not a marker")
    dest = tmp_path / "m"
    (dest / "notes").mkdir(parents=True)  # someone else's folder on the volume
    assert sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1) == []
    assert names(dest) == ["notes"]


def test_removes_temp_folders_of_a_killed_run(tmp_path):
    store = st.open_store(str(tmp_path / "store"))
    publish(store, 1)
    dest = tmp_path / "m"
    (dest / ".sync-1-abc" / "variables").mkdir(parents=True)
    assert sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1) == [1]
    assert names(dest) == ["1"]


def test_local_version_missing_from_store_is_pruned_by_age_only(tmp_path):
    store = st.open_store(str(tmp_path / "store"))
    publish(store, 3)
    dest = tmp_path / "m"
    (dest / "7").mkdir(parents=True)  # already served; since deleted from the store
    assert sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1) == []
    assert names(dest) == ["7"]
    assert sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=2) == [3]
    assert names(dest) == ["3", "7"]


class DictStore:
    """A store over a dict, for listings no real store here produces (odd or hostile keys)."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def uri(self, key=""):
        return f"s3://test/{key}"

    def list(self, prefix=""):
        for key in sorted(self.objects):
            if key.startswith(prefix.rstrip("/") + "/"):
                yield ObjectInfo(key, len(self.objects[key]))

    def get_file(self, key, dest):
        Path(dest).write_bytes(self.objects[key])


def test_key_escaping_the_version_folder_is_refused(tmp_path):
    store = DictStore(
        {
            "models/mnist/1/saved_model.pb": b"g",
            "models/mnist/1/../../../escaped": b"x",
        }
    )
    dest = tmp_path / "m"
    with pytest.raises(sync.SyncError, match="escapes"):
        sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1)
    assert names(dest) == [] and not (tmp_path / "escaped").exists()


def test_folder_marker_objects_are_skipped(tmp_path):
    store = DictStore(
        {
            "models/mnist/1/": b"",
            "models/mnist/1/variables/": b"",
            "models/mnist/1/variables/variables.index": b"ix",
            "models/mnist/1/saved_model.pb": b"g",
        }
    )
    dest = tmp_path / "m"
    assert sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1) == [1]
    assert (dest / "1" / "variables" / "variables.index").read_bytes() == b"ix"


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        sync.sync_once(st.open_store(str(tmp_path)), spec.MODELS_PREFIX, tmp_path / "m", keep=0)


def test_a_file_where_the_model_folder_should_be_is_a_sync_error(tmp_path):
    (tmp_path / "m").write_text("not a folder")
    store = st.open_store(str(tmp_path / "store"))
    with pytest.raises(sync.SyncError, match=r"model folder .*/m cannot be used: .*a file is"):
        sync.sync_once(store, spec.MODELS_PREFIX, tmp_path / "m", keep=2)


def test_a_version_that_cannot_be_removed_is_a_sync_error_after_the_new_one_is_placed(
    tmp_path, monkeypatch
):
    store = st.open_store(str(tmp_path / "store"))
    dest = tmp_path / "m"
    publish(store, 1)
    sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1)
    publish(store, 2)

    def read_only(folder, version):
        raise PermissionError(13, "Permission denied", str(folder / str(version)))

    monkeypatch.setattr(sync, "remove_version", read_only)
    with pytest.raises(sync.SyncError, match="removing version 1: .*Permission denied"):
        sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=1)
    assert "2" in names(dest)


# --- the command line, run as the containers run it --------------------------------------------


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.serving_sync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0 and "--keep" in result.stdout


@pytest.mark.parametrize(
    "args,error",
    [
        (["--dest", "d"], "--store"),
        (["--store", "gs://b/x", "--dest", "d"], "gs://b"),
        (["--store", "s", "--dest", "d", "--interval", "0"], "greater than 0"),
        (["--store", "s", "--dest", "d", "--keep", "-1"], "greater than 0"),
    ],
)
def test_cli_rejects_bad_arguments(args, error):
    result = run_cli(*args)
    assert result.returncode == 2 and error in result.stderr


def test_cli_once_against_s3(s3_bucket, s3_env, tmp_path):
    store = st.open_store(f"s3://{s3_bucket}/mnist", s3_env)
    publish(store, 1)
    publish(store, 2, complete=False)
    dest = tmp_path / "models" / "mnist"
    args = ["--store", f"s3://{s3_bucket}/mnist", "--s3-endpoint", s3_env, "--dest", str(dest)]
    result = run_cli(*args, "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert names(dest) == ["1"]
    assert "new version 1" in result.stdout
    assert FAKE_SECRET_KEY not in result.stdout + result.stderr


def test_cli_once_fails_visibly_on_a_missing_bucket(s3_bucket, s3_env, tmp_path):
    result = run_cli(
        "--store",
        f"s3://nope-{s3_bucket}/mnist",
        "--s3-endpoint",
        s3_env,
        "--dest",
        str(tmp_path / "m"),
        "--once",
    )
    assert result.returncode == 1
    assert f"nope-{s3_bucket}" in result.stdout and "Traceback" not in result.stderr
    assert FAKE_SECRET_KEY not in result.stdout + result.stderr


def test_cli_once_with_a_file_as_dest_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "m").write_text("not a folder")
    result = run_cli("--store", str(tmp_path / "store"), "--dest", str(tmp_path / "m"), "--once")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"model folder {tmp_path / 'm'} cannot be used" in errors[0]


def test_cli_loop_picks_up_new_versions_and_stops_on_sigterm(tmp_path):
    store = st.open_store(str(tmp_path / "store"))
    publish(store, 1)
    dest = tmp_path / "m"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "components.serving_sync",
            "--store",
            str(tmp_path / "store"),
            "--dest",
            str(dest),
            "--interval",
            "0.2",
            "--keep",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        wait_for(lambda: (dest / "1").is_dir())
        publish(store, 2)
        wait_for(lambda: names(dest) == ["2"])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "new version 2" in out and "removed old version 1" in out and "stopping" in out


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_version_the_export_has_claimed_is_not_copied_until_it_is_complete(tmp_path):
    """The export's own writes, stopped at each phase (exporter.publish's `notify`): claimed
    (CLAIM.json alone), then everything but saved_model.pb; the version reaches TF Serving's
    folder only once published. The sync already skipped them (it requires saved_model.pb,
    the export's last write); this pins it to the export's order."""
    from components.export import exporter

    local = tmp_path / "saved"
    for rel, data in {**VERSION_FILES, "saved_model.pb": b"graph"}.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    store = st.open_store(str(tmp_path / "store"))
    dest = tmp_path / "models" / "mnist"
    placed = {}

    def at(phase: str, version: int) -> None:
        placed[phase] = sync.sync_once(store, spec.MODELS_PREFIX, dest, keep=2)

    exporter.publish(local, store, spec.MODELS_PREFIX, at)
    assert placed == {"listed": [], "claimed": [], "uploaded": [], "published": [1]}
    assert sync.COMPLETE_MARKER == spec.SAVED_MODEL_PB == exporter.SAVED_MODEL_PB
    assert (dest / "1" / "saved_model.pb").read_bytes() == b"graph"

"""The CLI as a user meets it under bad inputs and bad conditions, run as a real process.

Every case ends in one line that says why (click's `Error: ...`), a non-zero exit status, no
traceback, and nothing printed that holds a secret. Ctrl-C or SIGTERM exits with 130 and leaves
no process of the run behind.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REPO
from tests.local.test_local_pipeline import run_cli

SECRET = "pa55-Zq9xW3-secret"
QUICK = ["--epochs", "1", "--train-limit", "300", "--min-accuracy", "0", "--no-verify-checksums"]


def one_line_failure(result, output: str, status: int = 1) -> str:
    """Assert the one-line failure contract; returns that line."""
    assert result.returncode == status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), output[-3000:]
    assert FAKE_SECRET_KEY not in output and SECRET not in output
    return lines[-1]


@pytest.fixture
def env():
    return {
        "PYTHONPATH": str(REPO),
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MNIST_S3_ATTEMPTS": "2",
    }


def counting_handler(directory: Path):
    """A static handler that counts every GET, to prove what was (not) retried."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        gets = 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):  # noqa: N802 - the http.server API
            type(self).gets += 1
            super().do_GET()

        def log_message(self, *args):
            pass

    return Handler


def test_a_404_source_fails_once_with_the_steps_own_reason(tmp_path, env):
    handler = counting_handler(tmp_path)
    with servers.serve(handler) as url:
        result, output = run_cli(
            [
                "run",
                "--local",
                "--source",
                url + "missing/",
                "--store",
                str(tmp_path / "s"),
                *QUICK,
            ],
            env,
            tmp_path,
        )
    line = one_line_failure(result, output)
    assert "download: " in line and "HTTP 404" in line and "(not retried)" in line, line
    assert handler.gets == 1  # no pod retries locally, no retries of a permanent failure


def test_a_source_that_cannot_be_reached_says_what_to_try_and_where_the_logs_are(tmp_path, env):
    """Offline, the default mirror cannot be reached: the one line names the fault in words,
    offers --source with a local copy, and points at the step logs, which exist."""
    url = f"http://127.0.0.1:{servers.free_port()}/mnist/"
    result, output = run_cli(
        ["run", "--local", "--source", url, "--store", str(tmp_path / "s"), *QUICK],
        {**env, "MNIST_DOWNLOAD_DEADLINE": "2"},
        tmp_path,
    )
    line = one_line_failure(result, output)
    assert "download: " in line and "connection refused (nothing listens" in line, line
    assert "offline? --source takes a local copy" in line, line
    logs = Path(line.rpartition("(step logs: ")[2].rstrip(")"))
    assert (logs / "download.log").is_file() and "giving up" in (logs / "download.log").read_text()


@pytest.mark.parametrize("case", ["refused", "no-bucket", "500"])
def test_run_against_a_broken_s3_store_is_one_line(tmp_path, env, s3_endpoint, case):
    from tests.unit.test_store_faults import misbehaving_s3, s3_error_handler

    def run(endpoint: str):
        args = ["run", "--local", "--store", "s3://no-such-bucket/mnist"]
        return run_cli([*args, "--s3-endpoint", endpoint, *QUICK], env, tmp_path, timeout=120)

    if case == "refused":
        result, output = run(f"http://127.0.0.1:{servers.free_port()}")
        expected = "connection refused"
    elif case == "no-bucket":
        result, output = run(s3_endpoint)
        expected = "NoSuchBucket"
    else:
        with misbehaving_s3(s3_error_handler(500, "InternalError", "boom")) as endpoint:
            result, output = run(f"http://{endpoint}")
        expected = "HTTP 500"
    line = one_line_failure(result, output)
    assert "no-such-bucket" in line and expected in line, line


def test_credentials_in_a_source_url_are_refused_and_never_printed(tmp_path, env):
    result, output = run_cli(
        ["run", "--local", "--source", f"http://user:{SECRET}@127.0.0.1:9/mnist/", *QUICK],
        env,
        tmp_path,
    )
    assert result.returncode == 2 and SECRET not in output
    assert "source" in output and "environment" in output


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--secret-name", ""], "--secret-name must not be empty"),
        (["--gpu-toleration-key", ""], "--gpu-toleration-key must not be empty"),
        (["--output-file", "{tmp}/a-file/out.yaml"], "a-file"),
        (["{tmp}/a-file/out.yaml"], "a-file"),
    ],
)
def test_compile_with_bad_flags_is_one_line(tmp_path, env, flags, expected):
    (tmp_path / "a-file").write_text("not a folder")
    flags = [f.format(tmp=tmp_path) for f in flags]
    result, output = run_cli(["compile", *flags], env, tmp_path)
    assert result.returncode in (1, 2), output
    assert "Traceback" not in output and expected in result.stderr.strip().splitlines()[-1]


def test_a_workdir_under_a_file_is_one_line_naming_it(tmp_path, env):
    (tmp_path / "a-file").write_text("not a folder")
    args = ["run", "--local", "--workdir", "a-file/runs", "--store", "store", *QUICK]
    result, output = run_cli(args, env, tmp_path, timeout=120)
    line = one_line_failure(result, output)
    assert line.startswith("Error: --workdir a-file/runs: cannot write ") and "a file is" in line


@pytest.mark.parametrize(
    "url, phrase",
    [
        ("notaurl", "it is not http(s)://"),
        ("http://h:port", "port is not a number"),
        ("http://[::1", "its host cannot be read"),
    ],
)
def test_a_serving_url_that_is_no_url_is_refused_in_one_line(tmp_path, env, url, phrase):
    result, output = run_cli(["ui", "--serving-url", url], env, tmp_path, timeout=60)
    assert phrase in one_line_failure(result, output, status=2)


def test_writing_names_only_what_the_person_named(tmp_path):
    """An OSError about another path is not theirs: it keeps its traceback."""
    from pipeline.commands.output import UnwritableFile, writing

    named = "--output x/y.yaml: cannot write .*: Permission denied"
    with pytest.raises(UnwritableFile, match=named), writing("x/y.yaml", "--output"):
        raise PermissionError(13, "Permission denied", "x/y.yaml")
    with pytest.raises(PermissionError) as raised, writing("x/y.yaml", "--output"):
        raise PermissionError(13, "Permission denied", "/etc/elsewhere")
    assert type(raised.value) is PermissionError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.unit.digit_images import save_model

    return save_model(tmp_path_factory.mktemp("model") / "1")


def test_predict_refuses_bad_models_in_one_line(tmp_path, env, model_dir):
    image = tmp_path / "7.png"
    image.write_bytes(b"\x89PNG not really")
    corrupt = tmp_path / "corrupt/1"
    (corrupt / "variables").mkdir(parents=True)
    (corrupt / "saved_model.pb").write_bytes(b"this is not a protobuf")
    down = f"http://127.0.0.1:{servers.free_port()}"
    cases = [
        (["--model", ""], "model URI is empty"),
        (["--model", str(corrupt)], "cannot be loaded"),
        (["--model", str(tmp_path)], "no complete model version at"),  # a folder, no version
        (["--model", "s3://[bucket/models/mnist/1"], "not an s3:// URI with a bucket"),
        (["--model", "s3://bucket/models/mnist/1", "--s3-endpoint", down], "connection refused"),
    ]
    for flags, expected in cases:
        result, output = run_cli(["predict", *flags, str(image)], env, tmp_path, timeout=120)
        line = one_line_failure(result, output)
        assert expected in line, (flags, line)


def test_predict_skips_a_fifo_and_refuses_a_dangling_link_without_hanging(tmp_path, env, model_dir):
    from tests.unit.digit_images import sample_files

    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    os.mkfifo(tmp_path / "pipe.png")
    result, output = run_cli(
        ["predict", "--model", str(model_dir), str(tmp_path / "7.jpg"), str(tmp_path / "pipe.png")],
        env,
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in output
    assert "7.jpg: The result: [7]" in result.stdout
    assert "pipe.png: error:" in result.stderr and "not a regular file" in result.stderr
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    result, output = run_cli(
        ["predict", "--model", str(model_dir), str(tmp_path / "dangling.png")], env, tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in output and "dangling.png" in output


def test_predict_takes_a_store_or_its_models_folder_and_uses_the_newest_version(
    tmp_path, env, model_dir
):
    """`predict --model` takes what `ui --model` takes: a version folder, the folder of the
    versions, or a store root (its models/mnist/ prefix): the newest complete version."""
    from tests.unit.digit_images import sample_files

    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    store = tmp_path / "store"
    versions = store / "models" / "mnist"
    shutil.copytree(model_dir, versions / "3")
    (versions / "4").mkdir()  # an export that did not finish: no saved_model.pb
    for model in (store, versions, versions / "3"):
        result, output = run_cli(["predict", "--model", str(model), "7.jpg"], env, tmp_path)
        assert result.returncode == 0, output
        assert result.stdout.strip() == "7.jpg: The result: [7]"
        # and nothing else: no TensorFlow log line (quiet_tf), no CUDA error without a GPU
        assert result.stderr.splitlines() == [f"model: version 3 at {versions / '3'}"]


def test_predict_json_names_the_model_version_and_every_image(tmp_path, env, model_dir):
    from tests.unit.digit_images import sample_files

    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    result, output = run_cli(
        ["predict", "--model", str(model_dir), "-o", "json", "7.jpg", "bad.png"],
        env,
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, output  # one image could not be read
    data = json.loads(result.stdout)
    assert data["model_version"] == 1 and data["model_uri"] == str(model_dir)
    seven, bad = data["predictions"]
    assert set(seven) == {"image", "prediction", "confidence", "low_confidence", "error"}
    assert seven["prediction"] == 7 and seven["error"] is None
    assert bad["prediction"] is None and bad["error"]


_SIGINT_DEFAULT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries `mark`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if mark.encode() in Path(f"/proc/{entry.name}/environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_exits_130_and_leaves_no_step_running(tmp_path, env, signum):
    """SIGTERM or SIGINT to the CLI alone (as a scheduler, `kill` or a CI timeout sends it,
    unlike a terminal's Ctrl-C, which reaches every process) while a step is busy."""
    mark = f"MNIST_TEST_MARK={uuid.uuid4().hex}"
    handler = servers.trickle_handler(size=10_000, every=0.5)
    with servers.serve(handler) as url:
        cli = subprocess.Popen(
            # a shell's background job (CI under `&`) ignores SIGINT, and children inherit that:
            # the CLI is exec'd from a Python that restores it (not a preexec_fn, which can
            # deadlock a child forked from a process with threads, as this one has)
            [sys.executable, "-c", _SIGINT_DEFAULT_THEN_EXEC, sys.executable]
            + ["-m", "pipeline.cli", "run", "--local", "--source", url + "m.zip"]
            + ["--store", str(tmp_path / "s"), *QUICK],
            env={**os.environ, **env, mark.split("=")[0]: mark.split("=")[1]}
            | {"PYTHONFAULTHANDLER": "1"},  # SIGABRT below shows where a stuck CLI waits
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stderr: list[str] = []  # read as it comes: a full pipe would stall the CLI itself
        reader = threading.Thread(target=lambda: stderr.extend(cli.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while len(_marked(mark)) < 2 and time.monotonic() < deadline:  # the CLI and a step
            time.sleep(0.2)
        if len(_marked(mark)) < 2:
            cli.send_signal(signal.SIGABRT)  # every thread's stack, to stderr
            cli.wait(30)
            reader.join(10)
            pytest.fail(f"no step started in 120 s; the CLI's stderr:\n{''.join(stderr)[-4000:]}")
        cli.send_signal(signum)
        cli.wait(60)
        reader.join(10)
    stderr = "".join(stderr)
    assert cli.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    deadline = time.monotonic() + 10
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked(mark) == [], "a process of the run outlived the CLI"

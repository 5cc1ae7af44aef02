"""`run --local --runner docker` without an engine: paths, mounts, environment, exit status.

The container tier (tests/containers, `make test-containers`) runs the DAG in real images.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from pipeline import containers
from pipeline.cli import main


def test_images_and_results_under_the_store_resolve_there(tmp_path, monkeypatch):
    """The pipeline's defaults `images` and `predictions` are paths under the store."""
    monkeypatch.chdir(tmp_path)
    arguments = {"store_uri": "store", "images_uri": "images", "results_uri": "s3://b/out"}
    assert containers.with_absolute_paths(arguments) == {
        "store_uri": str(tmp_path / "store"),
        "images_uri": str(tmp_path / "store" / "images"),
        "results_uri": "s3://b/out",
    }


def test_local_paths_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = {
        "source": "data/mnist",
        "store_uri": "s3://bucket/mnist",
        "images_uri": "file://" + str(tmp_path / "images"),
        "results_uri": "",
        "epochs": 2,
    }
    fixed = containers.with_absolute_paths(arguments)
    assert fixed == {
        **arguments,
        "source": str(tmp_path / "data" / "mnist"),
        "images_uri": str(tmp_path / "images"),
    }
    assert arguments["source"] == "data/mnist", "the caller's dict is left alone"


def test_mounts_name_the_same_paths_read_only_where_steps_only_read(tmp_path):
    (tmp_path / "source").mkdir()
    arguments = {
        "source": str(tmp_path / "source"),
        "store_uri": str(tmp_path / "store"),  # not there yet: made, as a step would
        "images_uri": str(tmp_path / "no-such-images"),  # left for the step to report
        "results_uri": "https://example.invalid/x",
    }
    mounts = {m["Target"]: m for m in containers._mounts(arguments)}
    assert set(mounts) == {str(tmp_path / "source"), str(tmp_path / "store")}
    assert mounts[str(tmp_path / "source")]["ReadOnly"] is True
    assert mounts[str(tmp_path / "store")]["ReadOnly"] is False
    assert all(m["Source"] == m["Target"] and m["Type"] == "bind" for m in mounts.values())
    assert (tmp_path / "store").is_dir()


def test_a_store_folder_that_cannot_be_made_is_one_line(tmp_path):
    """os.makedirs' bare OSError was a traceback out of `run --local --runner docker`."""
    (tmp_path / "a-file").write_text("not a folder")
    arguments = {"store_uri": str(tmp_path / "a-file" / "store")}
    with pytest.raises(containers.ContainerError, match=r"^store_uri .*/a-file/store cannot be"):
        containers._mounts(arguments)


def test_environment_passes_store_settings_and_nothing_path_valued(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/host-only.pem")
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2")
    monkeypatch.setenv("HOME", "/root")
    env = containers.environment("/runs/x/errors.txt")
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE" and env["MNIST_S3_ATTEMPTS"] == "2"
    assert "AWS_CA_BUNDLE" not in env
    assert env["MNIST_ERROR_FILE"] == "/runs/x/errors.txt" and env["HOME"] == "/tmp"


class FakeContainer:
    def __init__(self, status: int, events: list):
        self.status, self.events = status, events

    def logs(self, stream, follow):
        self.events.append("logs")
        return iter([b"step output\n"])

    def wait(self):
        self.events.append("wait")
        return {"StatusCode": self.status}

    def remove(self, force):
        self.events.append("remove")


class FakeClient:
    def __init__(self, status: int):
        self.events: list = []
        self.containers = self
        self.status = status

    def run(self, **kwargs):
        assert "auto_remove" not in kwargs, "the container must outlive its exit status"
        self.events.append("run")
        return FakeContainer(self.status, self.events)


@pytest.mark.parametrize("status", [0, 1, 137])
def test_the_exit_status_is_read_before_the_container_is_removed(status, capsys):
    client = FakeClient(status)
    assert containers._run_container(client, "img:1", ["python3"], {}, user="0:0") == status
    assert client.events == ["run", "logs", "wait", "remove"]
    assert "step output" in capsys.readouterr().out


def test_exit_status_kept_restores_kfps_function():
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    with containers.exit_status_kept():
        assert docker_task_handler.run_docker_container is containers._run_container
    assert docker_task_handler.run_docker_container is original


def test_no_engine_is_one_line_with_what_to_do(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    result = CliRunner().invoke(
        main,
        ["run", "--local", "--runner", "docker", "--workdir", str(tmp_path)]
        + ["--store", str(tmp_path / "store")],
        env=env,
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: no container engine answers at unix://{tmp_path}/no.sock")
    assert "podman system service" in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists(), (
        "nothing is written before the engine answers"
    )

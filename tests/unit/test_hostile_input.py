"""Hostile input, round 3: one test per defect an adversarial review found, each of which failed
on the code before the fix (issue 21), and the properties that keep the whole class away."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from components.batch_predict.report import Tally, markdown_table
from components.common import spec
from components.common.log import ForPeople, get_logger
from components.common.redact import redact_text
from components.download.fetch import download
from components.download.transfer import RetryPolicy
from components.download.transport import DownloadError
from components.store import LocalStore
from pipeline.cli import main
from tests.unit.test_cli_kfp import cli, one_line_error
from tests.unit.test_download import FaultServer

FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05, deadline=20, timeout=5)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def run_cli(*args: str, color: bool = False):
    """`mnist-pipeline ARGS`; with `color`, as on a terminal (click strips nothing itself)."""
    result = CliRunner().invoke(main, list(args), color=color)
    assert "Traceback" not in result.output, result.output
    return result


# --- 2: a password with reserved characters; malformed URLs are not retried ---------------


@pytest.mark.parametrize("password", ["pa/ss", "pa#ss", "pa?ss", "p@ss/w#rd?"])
def test_a_password_with_reserved_characters_is_never_printed_nor_retried(tmp_path, password):
    server = FaultServer({})
    with server.running() as url:
        host = url.split("://", 1)[1]
        source = f"http://user:{password}@{host}mnist.zip"
        with pytest.raises(DownloadError) as e:
            download(source, tmp_path / "out", retry=FAST)
    assert server.requests == []  # refused before any request: nothing to retry
    assert password not in str(e.value) and "ss" not in str(e.value).split("valid URL")[0]
    assert "not a valid URL" in str(e.value)
    result = run_cli("run", "--local", "--source", source, "--store", str(tmp_path / "s"))
    assert result.exit_code != 0 and password not in result.output, result.output


def test_a_url_requests_cannot_form_fails_at_once(tmp_path, caplog):
    with pytest.raises(DownloadError, match="not a valid URL"):
        download("http://exa mple.org/mnist.zip", tmp_path / "out", retry=FAST)
    assert "retry" not in caplog.text


# --- 3: clean never follows a link out of the store, empty folders included ---------------


def test_clean_leaves_empty_folders_behind_a_linked_folder_alone(tmp_path):
    outside = tmp_path / "elsewhere"
    for folder in ("mnist/1/variables", "mnist/2", "empty"):
        (outside / folder).mkdir(parents=True)
    store = tmp_path / "s"
    (store / "datasets/mnist").mkdir(parents=True)
    (store / "datasets/mnist/MANIFEST.json").write_text("{}")
    os.symlink(outside, store / "models")
    (store / "predictions").mkdir()
    os.symlink(outside, store / "predictions/old")
    result = run_cli("clean", "--store", str(store), "--yes")
    assert result.exit_code == 0, result.output
    left = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    assert left == ["empty", "mnist", "mnist/1", "mnist/1/variables", "mnist/2"]
    assert (store / "models").is_symlink() and (store / "predictions/old").is_symlink()
    assert not (store / "datasets").exists()  # its own empty folders do go


def test_each_removal_is_checked_when_it_happens(tmp_path):
    """A folder swapped for a link after the plan was made is not followed either."""
    store = LocalStore(tmp_path / "s")
    store.put_bytes("predictions/3/predictions.csv", b"x")
    outside = tmp_path / "elsewhere"
    (outside / "keep").mkdir(parents=True)
    (outside / "predictions.csv").write_text("mine")
    os.rename(tmp_path / "s/predictions/3", tmp_path / "moved")
    os.symlink(outside, tmp_path / "s/predictions/3")
    with pytest.raises(Exception, match="symbolic link"):
        store.delete("predictions/3/predictions.csv")
    assert store.remove_empty_folders("predictions") == 0
    assert (outside / "predictions.csv").read_text() == "mine" and (outside / "keep").is_dir()


# --- 12: clean of a folder that is not there -----------------------------------------------


def test_clean_of_a_store_that_is_not_there_fails_in_one_line(tmp_path):
    result = run_cli("clean", "--store", str(tmp_path / "typo"))
    assert result.exit_code == 2
    assert "is not there" in result.output and str(tmp_path / "typo") in result.output


# --- 4 and 8: parameters files --------------------------------------------------------------

BOMB = "\n".join(
    [f'a0: &a0 ["{"lol" * 3}"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["epochs: *a9"]
)


@pytest.mark.timeout(30)
def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    result = run_cli("run", "--local", "--params-file", str(path))
    assert result.exit_code == 2
    assert "aliases (*name) are not allowed" in result.output and len(result.output) < 600


@pytest.mark.timeout(30)
def test_a_fifo_as_the_parameters_file_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)
    result = run_cli("run", "--local", "--params-file", str(fifo))
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_a_huge_parameters_file_is_refused_and_its_value_never_printed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text('epochs: "' + "7" * 53_000_000 + '"\n')
    result = run_cli("run", "--local", "--params-file", str(path))
    assert result.exit_code == 2 and "larger than 64 KB" in result.output
    assert len(result.output) < 600


def test_a_long_value_is_shown_truncated(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text('epochs: "' + "y" * 20_000 + '"\n')
    result = run_cli("run", "--local", "--params-file", str(path))
    assert result.exit_code == 2 and "is not a valid int" in result.output
    assert len(result.output) < 600


# --- 9: a token in the --host URL's query -----------------------------------------------------


def test_a_token_in_the_hosts_query_is_never_printed(no_kfp_context, kfp_api):
    for host in (
        f"{kfp_api.url}/?token=S3cr3tT0ken",
        "http://127.0.0.1:9/?access_token=S3cr3tT0ken",
    ):
        result = cli("runs", "list", "--host", host, "--limit", "1")
        assert "S3cr3tT0ken" not in result.output + result.stderr


# --- 10: names that speak to the terminal or to the KFP UI -----------------------------------


def test_control_characters_in_a_run_name_are_shown_escaped(no_kfp_context, kfp_api):
    name = "nightly\x1b]0;owned\x07\x1b[2J\rfake line"
    assert cli("submit", "--run-name", name).exit_code == 0
    result = run_cli("runs", "list", color=True)
    assert not RAW_CONTROL.search(result.output), repr(result.output)
    assert "nightly\\x1b]0;owned\\x07\\x1b[2J\\rfake line" in result.output


def test_control_characters_in_a_file_name_are_shown_escaped(tmp_path, model):
    image = tmp_path / "evil\x1b[2J\r7.png"
    image.write_bytes(b"not an image")
    result = run_cli("predict", "--model", str(model), str(image), color=True)
    assert result.exit_code == 1 and "evil\\x1b[2J\\r7.png: error: not a" in result.output
    assert not RAW_CONTROL.search(result.output), repr(result.output)


def test_log_lines_escape_control_characters_and_redact(caplog):
    caplog.handler.setFormatter(ForPeople())  # as get_logger's handler has it
    log = get_logger("test")
    log.info("reading %s from %s", "a\x1b[2Jb.png", "http://u:pw@host/x?sig=abc")
    try:
        raise ValueError("GET http://u:pw2@host/ failed")
    except ValueError:
        log.exception("the traceback too")
    line = caplog.text
    assert "pw2" not in line and "***@host" in line
    assert "a\\x1b[2Jb.png" in line and not RAW_CONTROL.search(line.rstrip("\n"))
    assert "pw" not in line and "abc" not in line


def test_the_markdown_table_shows_html_in_a_name_as_text():
    tally = Tally()
    tally.add(("<img src=x onerror=alert(1)>.png", "7", "0.99", "", ""))
    tally.add(("`code`*b*[l](javascript:x).png", "", "", "bad <b>image</b>", ""))
    table = markdown_table(tally, "/store/predictions/1/predictions.csv", [("<script>.txt", "x")])
    assert "<img" not in table and "<script>" not in table and "<b>" not in table
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;.png" in table
    assert "[l](" not in table and "`code`" not in table


def test_the_markdown_table_makes_no_link_of_a_name():
    tally = Tally()
    tally.add(("www.evil.example/7.png", "7", "0.99", "", ""))
    tally.add(("https://evil.example/x.png", "7", "0.99", "", ""))
    table = markdown_table(tally, "s3://b/p/predictions.csv", [])
    assert "www.evil" not in table and "https://evil" not in table
    assert "www\\.evil.example/7.png" in table and "https\\://evil.example" in table


def test_an_error_row_is_redacted_in_the_csv(tmp_path):
    """What goes into predictions.csv, the table and the report: a reason quoting a URL with a
    token keeps its words but not the token."""
    from components.batch_predict.stream import _items

    (item,) = _items(["a.png"], ["GET https://h/a.png?X-Amz-Signature=SIGSIG1: 403\x1b[2J"])
    assert "SIGSIG1" not in item.error and "\x1b" not in item.error and "403" in item.error


def test_the_html_report_escapes_and_redacts_what_came_from_outside():
    from components.batch_predict.report import html_report

    tally = Tally()
    tally.add(
        ("<script>alert(1)</script>\x1b[2J.png", "", "", "GET http://u:pw@h/?token=SEKRET1", "")
    )
    page = html_report(tally, "s3://b/p/predictions.csv", [("a\rb.txt", "x")], {}, "m")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "SEKRET1" not in page and "pw@" not in page
    assert not RAW_CONTROL.search(page.replace("\n", ""))


# --- 11: predict follows the link a person names ---------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from tests.unit.digit_images import save_model

    return save_model(tmp_path_factory.mktemp("store") / "models/mnist/1")


def test_predict_reads_an_image_through_a_symlink(tmp_path, model):
    from tests.unit.digit_images import sample_files

    files, expected = sample_files()
    name, data = next((n, d) for n, d in files.items() if isinstance(expected[n], int))
    (tmp_path / name).write_bytes(data)
    os.symlink(tmp_path / name, tmp_path / "link.png")
    (tmp_path / "linked-folder").symlink_to(tmp_path)
    for path in (tmp_path / "link.png", tmp_path / "linked-folder" / name):
        result = run_cli("predict", "--model", str(model), str(path))
        assert result.exit_code == 0, result.output
        assert f"The result: [{expected[name]}]" in result.output


# --- 7: JSON read back from the store ---------------------------------------------------------


@pytest.mark.parametrize("content", [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe", b"{}"])
def test_a_models_provenance_that_is_not_an_object_leaves_the_lineage_blank(tmp_path, content):
    from components.batch_predict.step import model_lineage

    version = tmp_path / "models/mnist/4"
    version.mkdir(parents=True)
    (version / "provenance.json").write_bytes(content)
    lineage = model_lineage(str(version), "")
    assert lineage["model_version"] == 4 and lineage["dataset_digest"] == ""


@pytest.mark.parametrize(
    "files",
    [
        {"../../outside": {"size": 1, "sha256": "0" * 64}},
        {"sub/name": {"size": 1, "sha256": "0" * 64}},
        {"train-images-idx3-ubyte": ["size", 1]},
        {"train-images-idx3-ubyte": {"size": "1", "sha256": "0" * 64}},
        {"train-images-idx3-ubyte": {"sha256": "0" * 64}},
        [],
    ],
)
def test_a_dataset_manifest_that_lies_is_refused_before_anything_is_written(tmp_path, files):
    from components.dataset.manifest import DatasetError, fetch_dataset

    store = LocalStore(tmp_path / "s")
    store.put_bytes("d/MANIFEST.json", json.dumps({"files": files}).encode())
    with pytest.raises(DatasetError, match="not a valid manifest"):
        fetch_dataset(store, "d", tmp_path / "work" / "data")
    assert not (tmp_path / "work").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("name", ["٣", "²", "1٣", "1²", "007", " 7", "7 ", "+7", "-1", "", "1e3"])
def test_only_plain_numbers_are_model_versions(tmp_path, name):
    from components.export.exporter import existing_versions

    assert spec.version_number(name) is None
    store = LocalStore(tmp_path / "s")
    store.put_bytes(f"models/mnist/{name or 'x'}/saved_model.pb", b"x")
    store.put_bytes("models/mnist/2/saved_model.pb", b"x")
    assert existing_versions(store, "models/mnist") == {2}  # a stray folder blocks no export


# --- smaller: an empty or path-like run id never reaches the API -----------------------------


@pytest.mark.parametrize("run_id", ["", "  ", "../experiments/x", "a/b", "a?b=c", "x" * 200])
def test_a_bad_run_id_is_refused_before_any_request(no_kfp_context, kfp_api, run_id):
    for args in (("runs", "get", run_id), ("runs", "cancel", run_id)):
        before = len(kfp_api.requests)
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert len(kfp_api.requests) == before
        why = "must not be empty" if not run_id.strip() else "is not a KFP id"
        assert why in result.output
    # a schedule is found by ID or name in a listing: the key itself is never in a path
    result = cli("schedule", "delete", run_id)
    assert result.exit_code == 2, result.output
    assert all(r.method == "GET" and run_id.strip() not in r.path for r in kfp_api.requests)
    bad = not run_id.strip() or len(run_id) > 256
    why = "is not a recurring run's ID or name" if bad else "no recurring run has the ID or name"
    assert why in result.output


def test_the_safe_streams_are_restored_after_a_command():
    import sys

    before = sys.stdout, sys.stderr
    run_cli("clean", "--store", "/nonexistent/store")
    assert (sys.stdout, sys.stderr) == before


@pytest.mark.parametrize("body", [b"[1, 2]", b"7", "not json", b"[" * 100_000, None])
def test_a_kubernetes_error_body_that_is_not_a_status_still_gives_one_line(body):
    from types import SimpleNamespace

    from components.common.kube import INFERENCE_SERVICE, _describe

    line = _describe(SimpleNamespace(status=500, body=body), "create", INFERENCE_SERVICE, "ns", "x")
    assert "HTTP 500" in line and "\n" not in line


# --- a second review's forms of secrets, and legitimate text that must stay as it is --------

SECRET = "S3CRETxyz"


@pytest.mark.parametrize(
    "text",
    [
        "MINIO_ROOT_PASSWORD=S3CRETxyz", "DB_PASSWORD=S3CRETxyz", "MINIO_SECRET_KEY=S3CRETxyz",
        "X-Auth-Token: S3CRETxyz", "Private-Token: S3CRETxyz", "X-Vault-Token: S3CRETxyz",
        '{"token": "S3CRETxyz"}', '{"secret": "S3CRETxyz"}', "secretAccessKey: S3CRETxyz",
        "pwd=S3CRETxyz", "--password S3CRETxyz", '{"password": "hello S3CRETxyz"}',
        "'password': b'S3CRETxyz'", "Cookie: a=1; session=S3CRETxyz",
        "https://host/?pass=S3CRETxyz", "https://host/?pw=S3CRETxyz", "https://host/?jwt=S3CRETxyz",
        "https://host/p?%73ig=S3CRETxyz", "https://host/p?token='S3CRETxyz'",
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3CRETxyz",
        "x_https://user:S3CRETxyz@host/", "9https://user:S3CRETxyz@host/",
        "https:/user:S3CRETxyz@host", "//user:S3CRETxyz@host/path", "redis://:S3CRETxyz@host:6379",
        "https://hooks.slack.com/services/T000/B000/S3CRETxyz",
        "https://api.telegram.org/botS3CRETxyz/getMe", "ghp_S3CRETxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",
        "--token S3CRETxyz", "--token=S3CRETxyz", "--token TOKENS3CRETxyz",
        "--password tokenS3CRETxyz",
    ],
)  # fmt: skip
def test_secrets_in_the_forms_a_second_review_found_are_masked(text):
    assert SECRET not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "daily-03:00@utc", "train 12:30@node-1", "postgres-operator:v1.2@sha256:abcd",
        "s3://bucket/path@v1/file", "issue #code=42", "nightly;session=3",
        "see https://x.org/y?page=2&limit=10 ok", "--token-file /tmp/t", "https://host:8080/a/b",
        "Error: --token-file: cannot be read", "http://[::1]:9000/x",
        "/var/run/secrets/token: not a regular file", "C:\\keys\\password: no such file",
        "  --token TOKEN   Bearer token for a multi-user Kubeflow.", "--password TEXT",
    ],
)  # fmt: skip
def test_text_without_a_secret_is_left_as_it_is(text):
    assert redact_text(text) == text


def test_a_json_document_stays_json_when_a_value_is_masked():
    document = json.dumps({"password": "a b", "name": "run", "url": "https://h/?token=x&page=2"})
    masked = json.loads(redact_text(document))
    assert masked == {"password": "***", "name": "run", "url": "https://h/?token=***&page=2"}


# --- a newline in a name must not forge a line ---------------------------------------------


def test_a_newline_in_a_file_name_forges_no_line_of_clean(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.put_bytes("predictions/1/zz\ndeleting /home/alice/thesis.tex (88.0 MB)", b"x")
    result = run_cli("clean", "--store", str(tmp_path / "s"))
    lines = result.output.splitlines()
    assert not any(line.startswith("deleting /home") for line in lines), result.output
    assert any("zz\\ndeleting /home/alice/thesis.tex" in line for line in lines)


def test_a_newline_in_a_run_name_forges_no_row(no_kfp_context, kfp_api):
    assert cli("submit", "--run-name", "ok\nrun-FAKE  SUCCEEDED").exit_code == 0
    rows = cli("runs", "list").output.splitlines()
    assert len(rows) == 1 and rows[0].endswith("ok\\nrun-FAKE  SUCCEEDED")


def test_a_newline_in_a_logged_value_forges_no_log_line(caplog):
    caplog.handler.setFormatter(ForPeople("%(levelname)s %(message)s"))
    forged = "7.png\nINFO model accuracy 0.9999, pushed (forged)"
    get_logger("test").warning("cannot read %s: not an image", forged)
    get_logger("test").info("two lines\nof our own")
    assert caplog.text.splitlines() == [
        "WARNING cannot read 7.png\\nINFO model accuracy 0.9999, pushed (forged): not an image",
        "INFO two lines",
        "of our own",
    ]


# --- small files a person names: the token file as the params file -------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "huge"])
def test_a_token_file_is_read_with_bounds(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "token"
        os.mkfifo(path)
    elif kind == "huge":
        path = tmp_path / "token"
        path.write_text("x" * 100_000)
    else:
        path = Path(kind)
    for env in ({}, {"KFP_TOKEN_FILE": str(path)}):
        args = ["runs", "list", "--host", "http://127.0.0.1:9"]
        args += [] if env else ["--token-file", str(path)]
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "not a regular file" in result.output or "larger than 64 KB" in result.output


def test_a_folder_as_a_parameters_file_is_named_as_one(tmp_path):
    from pipeline.params import ParameterError, load_params_file

    with pytest.raises(ParameterError, match="a folder; give a YAML or JSON file"):
        load_params_file(tmp_path)


def test_a_bugs_traceback_is_still_shown_but_redacted(tmp_path, monkeypatch):
    from pipeline import cleanup

    def bug(*args):
        raise TypeError("GET https://u:Pw0rd42@h.example/x?token=Tk42 \x1b[2J")

    monkeypatch.setattr(cleanup, "plan", bug)
    (tmp_path / "s").mkdir()
    result = CliRunner().invoke(main, ["clean", "--store", str(tmp_path / "s")], color=True)
    assert result.exit_code == 1 and "Traceback" in result.output and "TypeError" in result.output
    assert "Pw0rd42" not in result.output and "Tk42" not in result.output
    assert not RAW_CONTROL.search(result.output.replace("\n", ""))


def test_the_roots_own_usage_errors_are_redacted():
    result = run_cli("--https://u:Pw0rd42@h.example/")
    assert result.exit_code == 2 and "Pw0rd42" not in result.output


@pytest.mark.parametrize("source", ["https:///x", "http://:80/x"])
def test_a_source_url_without_a_host_is_refused_with_the_parameters(source):
    from components.common.parameters import ParameterError, check

    with pytest.raises(ParameterError, match="not a valid URL"):
        check("source", source)


def test_a_quoted_value_is_at_most_200_characters_whatever_its_shape():
    from components.common.parameters import shown_value

    wide = {"k" * 50 + str(i): "v" * 100 for i in range(10)}
    for value in (wide, [wide] * 4, "x" * 10_000, 10**5000):
        assert len(shown_value(value)) <= 200


@pytest.mark.parametrize(
    "runs, phrase",
    [
        ([{"run_id": "r1", "display_name": "n", "created_at": "junk"}], "cannot read"),
        ([{"run_id": "r1", "display_name": "n", "created_at": {"a": 1}}], "cannot read"),
        ("\x1b[2Jhttps://u:Pw0rd42@h.example", "without an id"),
        ([{"display_name": "no id"}], "without an id"),
    ],
)
def test_a_kfp_answer_the_client_cannot_read_is_one_line(no_kfp_context, kfp_api, runs, phrase):
    body = json.dumps({"runs": runs, "total_size": 1}).encode()
    kfp_api.respond(200, body, "application/json", method="GET", path="/runs")
    line = one_line_error(cli("runs", "list"))  # exit status 3, as every KFP API failure
    assert phrase in line and "TLS" not in line and "Pw0rd42" not in line

"""What a reader of the store sees, promise by promise, with no server (components/store/): which
store a URI opens and where it points; what delete_all removes and counts; a write in progress
seen only as an unfinished write, the old object whole until the new one replaces it; the one
line a refusal or a failure reads, with the bounds that applied; keys kept as listed; a listing
and the unfinished uploads that end at a folder's boundary; and the requests a real boto3
client would send S3 (endpoint, signature, If-None-Match, metadata, attempts), caught before
they leave the process."""

from __future__ import annotations

import hashlib
import os

import pytest
from botocore import exceptions as bx
from botocore.awsrequest import AWSResponse

from components.common.errors import InputError
from components.store import (
    LocalStore,
    ObjectInfo,
    S3Store,
    Skipped,
    StoreError,
    delete_all,
    open_store,
    s3,
)
from components.store import local as local_module
from components.store import s3_store as s3_store_module
from tests.unit.test_s3_requests import Client, client_error

ENDPOINT = "http://minio.example:9000"


@pytest.fixture
def local(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "root")


class Uploads(Client):
    """The recording client, with unfinished multipart uploads listed as S3 lists them: every
    upload whose key starts with the asked prefix, and no Uploads at all when there is none."""

    def __init__(self, uploads: list[str]):
        super().__init__()
        self.uploads = uploads

    def list_multipart_uploads(self, **kw):
        self._call("list_multipart_uploads", **kw)
        keys = [(n, k) for n, k in enumerate(self.uploads) if k.startswith(kw["Prefix"])]
        return {"Uploads": [{"Key": k, "UploadId": f"u{n}"} for n, k in keys]} if keys else {}


@pytest.fixture
def client(monkeypatch) -> Uploads:
    fake = Uploads([])
    monkeypatch.setattr(s3_store_module.s3, "client", lambda endpoint, bounds: fake)
    return fake


def s3_store(prefix: str = "root") -> S3Store:
    return S3Store("bkt", prefix, ENDPOINT)


# open_store and delete_all ---------------------------------------------------------------------


def test_an_empty_store_uri_is_refused_in_words():
    with pytest.raises(InputError) as refused:
        open_store("")
    assert str(refused.value) == "store URI is empty: give s3://bucket/prefix or a local folder"


def test_an_s3_uri_opens_its_bucket_and_prefix_on_the_endpoint_given(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://not-this.example:1")
    store = open_store("s3://bkt/runs/r1/", "https://store.example:8443")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.endpoint) == ("bkt", "runs/r1", "store.example:8443")
    assert store.uri("a/b") == "s3://bkt/runs/r1/a/b"
    assert store.client.meta.endpoint_url == "https://store.example:8443"


def test_without_an_endpoint_a_store_uses_aws_endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.example:9000")
    for store in (open_store("s3://bkt/p"), S3Store("bkt", "p")):
        assert store.endpoint == "minio.example:9000"
        assert store.client.meta.endpoint_url == "http://minio.example:9000"


def test_a_folder_uri_opens_a_local_store_there(tmp_path):
    store = open_store(str(tmp_path / "s"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "s"
    store.put_bytes("a", b"x")
    assert (tmp_path / "s" / "a").read_bytes() == b"x"


def test_delete_all_removes_what_is_under_the_prefix_and_counts_it(tmp_path):
    store = open_store(str(tmp_path / "s"))
    for key in ("runs/r1/a", "runs/r1/b/c", "runs/r10/a", "keep"):
        store.put_bytes(key, b"x")
    assert delete_all(store, "runs/r1") == 2
    assert [o.key for o in store.list()] == ["keep", "runs/r10/a"]
    assert delete_all(store) == 2
    assert list(store.list()) == []
    assert delete_all(store) == 0


def test_delete_all_on_s3_deletes_each_listed_key_in_full(client):
    keys = ["root/runs/r1/a", "root/runs/r1//b", "root/runs/r10/a"]
    client.objects.update({key: b"x" for key in keys})
    assert delete_all(s3_store(), "runs/r1") == 2
    deleted = [kw["Key"] for name, kw in client.calls if name == "delete_object"]
    assert deleted == ["root/runs/r1//b", "root/runs/r1/a"]


# LocalStore ------------------------------------------------------------------------------------


def test_a_write_in_progress_is_an_unfinished_write_beside_its_object(local):
    """While the new bytes are written, a reader gets the old object whole, and a scan names the
    half-written file as an unfinished write in the object's folder, never as an object."""
    local.put_bytes("models/1/m", b"old")
    seen = {}

    def fill(tmp):
        tmp.write(b"new!")
        tmp.flush()
        seen["bytes"] = local.get_bytes("models/1/m")
        seen["scan"] = local.scan("models")

    local._write("models/1/m", fill)
    found, skipped = seen["scan"]
    assert seen["bytes"] == b"old" and found == [ObjectInfo("models/1/m", 3)]
    [(key, why)] = skipped
    assert key.startswith("models/1/.part-") and why == "an unfinished write (.part-*)"
    assert local.get_bytes("models/1/m") == b"new!"
    assert local.scan("models") == ([ObjectInfo("models/1/m", 4)], [])


def test_a_failed_write_reports_its_own_failure_when_its_part_file_is_already_gone(local):
    """`clean` deletes unfinished writes: one removed under a writer that is then interrupted
    must not turn the interruption into a missing-file error."""

    class Interrupted(Exception):
        pass

    def fill(tmp):
        os.unlink(tmp.name)
        raise Interrupted

    with pytest.raises(Interrupted):
        local._write("k", fill)
    assert not (local.root / "k").exists()


def test_a_scan_without_a_prefix_is_the_whole_store_at_every_depth(local):
    local.put_bytes("top", b"1")
    local.put_bytes("a/b/deep", b"22")
    (local.root / "a" / "b" / ".part-x").write_bytes(b"half")
    os.mkfifo(local.root / "fifo")
    found, skipped = local.scan()
    assert found == [ObjectInfo("a/b/deep", 2), ObjectInfo("top", 1)]
    assert skipped == [
        Skipped("a/b/.part-x", "an unfinished write (.part-*)"),
        Skipped("fifo", "FIFO: not read"),
    ]


def test_a_folder_swapped_for_a_loop_of_links_under_a_write_is_named_in_one_line(
    local, monkeypatch
):
    """The folder is made, then (another process) replaced by a loop: the write is refused in
    one line naming the object, and nothing is written."""
    local.root.mkdir(parents=True)
    (local.root / "a").symlink_to(local.root / "b")
    (local.root / "b").symlink_to(local.root / "a")
    monkeypatch.setattr(local_module.Path, "mkdir", lambda self, **kwargs: None)
    with pytest.raises(StoreError) as e:
        local.put_bytes("a/k", b"x")
    assert str(e.value) == f"{local.uri('a/k')}: a loop of symbolic links"
    assert sorted(p.name for p in local.root.iterdir()) == ["a", "b"]


def test_a_read_below_a_file_says_what_the_system_said(local):
    local.put_bytes("f", b"x")
    with pytest.raises(StoreError) as e:
        local.get_bytes("f/x")
    assert str(e.value) == f"{local.uri('f/x')}: Not a directory"


def test_a_linked_folder_is_named_by_its_key_whatever_its_name(local, tmp_path):
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    local.root.mkdir(parents=True)
    (local.root / "X").symlink_to(tmp_path / "elsewhere")
    assert local.scan("X/") == ([], [Skipped("X", "symbolic link: not followed")])
    assert local.scan("X/deeper/") == (
        [], [Skipped("X/deeper", "reached through a symbolic link: not followed")])  # fmt: skip


def test_a_file_removed_while_its_folder_is_scanned_is_left_out_and_the_rest_listed(
    local, monkeypatch
):
    for key in ("d/a", "d/b", "d/c"):
        local.put_bytes(key, b"x")
    walk = os.walk

    def walk_while_a_writer_removes_b(top, *args, **kwargs):
        for folder, dirs, names in walk(top, *args, **kwargs):
            if "b" in names:
                os.unlink(os.path.join(folder, "b"))  # after the folder was read
            yield folder, dirs, names

    monkeypatch.setattr(local_module.os, "walk", walk_while_a_writer_removes_b)
    assert [o.key for o in local.list("d")] == ["d/a", "d/c"]


def test_an_empty_folder_reached_through_a_link_is_never_removed(local, tmp_path):
    """Checked just before its removal: a folder swapped for a link meanwhile stays."""
    (tmp_path / "elsewhere" / "empty").mkdir(parents=True)
    local.root.mkdir(parents=True)
    (local.root / "in").symlink_to(tmp_path / "elsewhere")
    assert local._rmdir_if_empty(local.root / "in" / "empty") is False
    assert (tmp_path / "elsewhere" / "empty").is_dir()


# S3Store through the recording client ----------------------------------------------------------


def test_an_abort_that_fails_names_the_upload_and_the_endpoint(client):
    client.failures["abort_multipart_upload"] = client_error("NoSuchUpload", 404, "gone")
    with pytest.raises(StoreError) as e:
        s3_store().abort_upload("big/x.bin", "u1")
    assert str(e.value) == (
        "aborting upload of s3://bkt/root/big/x.bin at endpoint minio.example:9000 failed: "
        "NoSuchUpload: gone"
    )


def test_a_download_cut_short_says_so_and_leaves_nothing(client, tmp_path, monkeypatch):
    client.objects["root/a"] = b"123456789"
    real = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: real(**kw, _fail_after=5))
    with pytest.raises(StoreError) as e:
        s3_store().get_file("a", tmp_path / "a")
    assert str(e.value) == (
        "download of s3://bkt/root/a at endpoint minio.example:9000 failed: "
        "the connection was dropped (3 attempt(s))"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_refused_upload_names_the_object_and_the_endpoint(client):
    client.failures["put_object"] = client_error("AccessDenied", 403, "no")
    with pytest.raises(StoreError) as e:
        s3_store().put_bytes("models/1/CLAIM.json", b"{}", exclusive=True)
    assert str(e.value) == (
        "upload to s3://bkt/root/models/1/CLAIM.json at endpoint minio.example:9000 failed: "
        "AccessDenied: no"
    )


def test_a_failure_names_the_bounds_the_store_was_opened_with(client, monkeypatch):
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2")
    store = s3_store()
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "5")  # changed after: not this store's client
    client.failures["delete_object"] = bx.EndpointConnectionError(endpoint_url=ENDPOINT)
    with pytest.raises(StoreError) as e:
        store.delete("k")
    assert str(e.value) == (
        "delete of s3://bkt/root/k at endpoint minio.example:9000 failed: "
        "connection refused or host unreachable (2 attempt(s))"
    )


def test_a_listed_key_is_the_object_it_names(client):
    """Under a prefix a key is kept as listed: `/x` is the object `root//x`, not `root/x`."""
    client.objects.update({"root//x": b"1", "root/x": b"22"})
    store = s3_store()
    assert list(store.list()) == [ObjectInfo("/x", 1), ObjectInfo("x", 2)]
    store.delete("/x")
    assert client.calls[-1] == ("delete_object", {"Bucket": "bkt", "Key": "root//x"})


def test_at_the_bucket_root_a_key_loses_only_its_leading_slashes(client):
    bucket = s3_store(prefix="")
    bucket.put_bytes("//X-ray.png", b"x")
    bucket.put_bytes("X/y", b"x")
    assert [kw["Key"] for _, kw in client.calls] == ["X-ray.png", "X/y"]


@pytest.mark.parametrize("prefix", ["X", "X/", "/X/"])
def test_a_listing_of_a_folder_is_that_folder_whatever_its_name(client, prefix):
    client.objects.update({"root/X/1": b"1", "root/X/2/y": b"22", "root/Xy/3": b"3", "root/y": b""})
    assert list(s3_store().list(prefix)) == [ObjectInfo("X/1", 1), ObjectInfo("X/2/y", 2)]
    assert client.calls[-1] == ("list_objects_v2", {"Bucket": "bkt", "Prefix": "root/X/"})


def test_an_entry_listed_without_a_size_is_empty(client, monkeypatch):
    class Paginator:
        def paginate(self, **kw):
            yield {"Contents": [{"Key": "root/marker/"}, {"Key": "root/a", "Size": 2}]}

    monkeypatch.setattr(client, "get_paginator", lambda name: Paginator())
    assert list(s3_store().list()) == [ObjectInfo("marker/", 0), ObjectInfo("a", 2)]


def test_unfinished_uploads_are_those_in_the_folder_and_nowhere_else(client):
    """`clean` aborts what this lists: an upload of `predictions-by-hand/` or of another store
    whose prefix starts alike (`rootless/`) is not under `predictions` nor under `root`."""
    client.uploads = [
        "root/predictions/a.csv",
        "root/predictions-by-hand/b.csv",
        "rootless/c",
        "root/p.csv",
    ]
    assert s3_store().incomplete_uploads("predictions") == [("predictions/a.csv", "u0")]
    assert s3_store().incomplete_uploads("predictions/a") == []
    in_root = [("predictions/a.csv", "u0"), ("predictions-by-hand/b.csv", "u1"), ("p.csv", "u3")]
    assert s3_store().incomplete_uploads() == in_root
    assert s3_store(prefix="").incomplete_uploads("root") == [
        (f"root/{key}", upload) for key, upload in in_root]  # fmt: skip
    assert [kw["Prefix"] for _, kw in client.calls] == [
        "root/predictions/", "root/predictions/a/", "root/", "root/"]  # fmt: skip


# The requests a real boto3 client sends --------------------------------------------------------


class _Raw:
    def stream(self, **kwargs):
        yield b""


@pytest.fixture
def sent(monkeypatch):
    """Every request the S3 clients made in the test send, answered here with `sent.status`
    (200 unless the test sets another); clients of their own, not shared with other tests."""

    class Sent(list):
        status = 200

    sent = Sent()

    def before_send(request, **kwargs):
        sent.append(request)
        return AWSResponse(request.url, sent.status, {"ETag": '"e"'}, _Raw())

    real = s3._client.__wrapped__

    def made(*args):
        made_client = real(*args)
        made_client.meta.events.register("before-send.s3", before_send)
        return made_client

    monkeypatch.setattr(s3, "_client", s3.functools.lru_cache(maxsize=8)(made))
    return sent


def header(request, name: str) -> str:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else (value or "")


def test_an_exclusive_put_is_what_s3_receives(sent, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-never-shown")
    open_store("s3://bkt/root", ENDPOINT).put_bytes("models/1/CLAIM.json", b"{}", exclusive=True)
    [request] = sent
    assert (request.method, request.url) == ("PUT", f"{ENDPOINT}/bkt/root/models/1/CLAIM.json")
    assert header(request, "If-None-Match") == "*"
    assert header(request, "x-amz-meta-sha256") == hashlib.sha256(b"{}").hexdigest()
    assert "Credential=AKIDEXAMPLE1/" in header(request, "Authorization")
    assert "secret-never-shown" not in str(request.headers)


def test_other_credentials_sign_with_another_client_and_none_send_unsigned(sent, monkeypatch):
    for name in s3._CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    open_store("s3://bkt/p", ENDPOINT).put_bytes("public", b"x")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFIRST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s1")
    open_store("s3://bkt/p", ENDPOINT).put_bytes("a", b"x")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSECOND")
    open_store("s3://bkt/p", ENDPOINT).put_bytes("b", b"x")
    signed = [header(r, "Authorization").split("/")[0] for r in sent]
    assert signed == ["", "AWS4-HMAC-SHA256 Credential=AKIDFIRST",
                      "AWS4-HMAC-SHA256 Credential=AKIDSECOND"]  # fmt: skip


def test_a_client_is_bounded_as_asked_or_as_the_environment_says(sent, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://store.example:8443")
    monkeypatch.setenv("MNIST_S3_CONNECT_TIMEOUT", "4")
    monkeypatch.setenv("MNIST_S3_READ_TIMEOUT", "9")
    from_env = s3.client()
    assert from_env.meta.endpoint_url == "https://store.example:8443"
    config = from_env.meta.config
    assert (config.connect_timeout, config.read_timeout) == (4.0, 9.0)
    asked = s3.client(ENDPOINT, s3.Bounds(connect=1.5, read=2.5, attempts=2)).meta.config
    assert (asked.connect_timeout, asked.read_timeout) == (1.5, 2.5)


def test_a_server_that_keeps_failing_is_asked_as_many_times_as_the_message_says(sent, monkeypatch):
    """MNIST_S3_ATTEMPTS counts every try, the first one included."""
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    sent.status = 503
    with pytest.raises(StoreError) as e:
        open_store("s3://bkt/root", ENDPOINT).delete("k")
    assert str(e.value).endswith("failed: the server kept answering HTTP 503 (2 attempt(s))")
    assert [header(r, "amz-sdk-request") for r in sent] == [
        "attempt=1; max=2", "attempt=2; max=2"]  # fmt: skip


def test_an_answer_whose_code_is_404_is_no_object_even_without_a_status(client):
    """A HEAD has no body, so botocore gives its status as the code: the code alone suffices."""
    client.objects["root/a"] = b"x"
    client.failures["head_object"] = bx.ClientError({"Error": {"Code": "404"}}, "HeadObject")
    assert s3_store().stat("a") is None

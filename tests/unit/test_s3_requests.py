"""What S3Store asks of S3, request by request, and what it makes of the answers
(components/store/s3_store.py): the bucket and full key of each call, the sha256 metadata, the
conditional create only when asked, large files through s3transfer; keys relative to the
store's prefix, a listing that ends at a folder's boundary; each failure a StoreError naming
the action, the object and the endpoint. A recording client stands in for boto3's, so each
request is seen as S3 would receive it; tests/unit/test_store.py runs the same store against a
real S3 server."""

from __future__ import annotations

import hashlib
import io

import pytest
from botocore import exceptions as bx

from components.store import SHA256_META, AlreadyExists, ObjectInfo, Skipped, StoreError
from components.store import s3_store as s3_store_module
from components.store.s3_store import S3Store


def client_error(code: str, status: int = 400, message: str = "") -> bx.ClientError:
    response = {"Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status}}  # fmt: skip
    return bx.ClientError(response, "Op")


class Body:
    def __init__(self, data: bytes, fail_after: int | None = None):
        self.data, self.fail_after, self.closed = data, fail_after, False

    def read(self) -> bytes:
        if self.fail_after is not None:
            raise bx.IncompleteReadError(
                actual_bytes=self.fail_after, expected_bytes=len(self.data)
            )
        return self.data

    def iter_chunks(self, size: int):
        assert size == 1 << 20, size  # a MiB at a time
        stream = io.BytesIO(self.data)
        while chunk := stream.read(4):
            if self.fail_after is not None and stream.tell() > self.fail_after:
                raise bx.IncompleteReadError(actual_bytes=stream.tell(), expected_bytes=9)
            yield chunk

    def close(self) -> None:
        self.closed = True


class Client:
    """boto3's S3 client as S3Store uses it: each call recorded; answers and failures set."""

    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects = dict(objects or {})
        self.calls: list[tuple[str, dict]] = []
        self.failures: dict[str, Exception] = {}
        self.bodies: list[Body] = []
        self.without_metadata: set[str] = set()

    def _call(self, name: str, **kwargs):
        self.calls.append((name, kwargs))
        if name in self.failures:
            raise self.failures[name]

    def put_object(self, **kw):
        self._call("put_object", **kw)
        body = kw["Body"]
        self.objects[kw["Key"]] = body if isinstance(body, bytes) else body.read()

    def upload_file(self, filename, bucket, **kw):
        self._call("upload_file", filename=filename, bucket=bucket, **kw)

    def get_object(self, **kw):
        self._call("get_object", **kw)
        self.bodies.append(Body(self.objects[kw["Key"]], kw.pop("_fail_after", None)))
        return {"Body": self.bodies[-1]}

    def head_object(self, **kw):
        self._call("head_object", **kw)
        data = self.objects[kw["Key"]]
        if kw["Key"] in self.without_metadata:
            return {"ContentLength": len(data)}
        return {"ContentLength": len(data), "Metadata": {SHA256_META: "d" * 64}}

    def delete_object(self, **kw):
        self._call("delete_object", **kw)

    def list_multipart_uploads(self, **kw):
        self._call("list_multipart_uploads", **kw)
        return {"Uploads": [{"Key": "root/big/x.bin", "UploadId": "u1"}]}

    def abort_multipart_upload(self, **kw):
        self._call("abort_multipart_upload", **kw)

    def head_bucket(self, **kw):
        self._call("head_bucket", **kw)

    def create_bucket(self, **kw):
        self._call("create_bucket", **kw)

    def get_paginator(self, name):
        assert name == "list_objects_v2"
        client = self

        class Paginator:
            def paginate(self, **kw):
                client._call("list_objects_v2", **kw)
                keys = sorted(k for k in client.objects if k.startswith(kw["Prefix"]))
                yield {"Contents": [{"Key": k, "Size": len(client.objects[k])} for k in keys[:2]]}
                yield {"Contents": [{"Key": k, "Size": len(client.objects[k])} for k in keys[2:]]}
                yield {}  # a page with no Contents

        return Paginator()


@pytest.fixture
def client(monkeypatch) -> Client:
    fake = Client()
    monkeypatch.setattr(s3_store_module.s3, "client", lambda endpoint, bounds: fake)
    return fake


def store(prefix: str = "root") -> S3Store:
    return S3Store("bkt", prefix, "http://minio.example:9000")


def test_put_bytes_sends_the_content_and_its_digest_under_the_prefix(client):
    store().put_bytes("a/b.json", b"{}")
    assert client.calls == [("put_object", {
        "Bucket": "bkt", "Key": "root/a/b.json", "Body": b"{}",
        "Metadata": {SHA256_META: hashlib.sha256(b"{}").hexdigest()}})]  # fmt: skip


def test_an_exclusive_create_is_conditional_and_only_then(client):
    store().put_bytes("claim", b"1", exclusive=True)
    store().put_bytes("plain", b"2")
    (_, exclusive), (_, plain) = client.calls
    assert exclusive["IfNoneMatch"] == "*" and "IfNoneMatch" not in plain


@pytest.mark.parametrize("code", ["PreconditionFailed", "ConditionalRequestConflict"])
def test_a_lost_conditional_create_is_already_exists(client, code):
    client.failures["put_object"] = client_error(code, 412)
    with pytest.raises(AlreadyExists) as e:
        store().put_bytes("models/1/CLAIM.json", b"x", exclusive=True)
    assert str(e.value) == "s3://bkt/root/models/1/CLAIM.json already exists; not overwriting it"


def test_put_file_sends_the_given_digest_or_none(client, tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    store().put_file("k", tmp_path / "f", sha256="e" * 64)
    store().put_file("k2", tmp_path / "f")
    store().put_file("k3", tmp_path / "f", exclusive=True)
    metas = [(kw["Key"], kw["Metadata"], kw.get("IfNoneMatch")) for _, kw in client.calls]
    assert metas == [("root/k", {SHA256_META: "e" * 64}, None), ("root/k2", {}, None),
                     ("root/k3", {}, "*")]  # fmt: skip
    assert client.objects["root/k"] == b"data"


def test_a_large_file_goes_up_in_parts_through_s3transfer(client, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_store_module, "_MULTIPART_FROM", 8)
    (tmp_path / "big").write_bytes(b"x" * 8)  # at the threshold: in parts
    (tmp_path / "small").write_bytes(b"x" * 7)
    store().put_file("big", tmp_path / "big", sha256="f" * 64)
    store().put_file("small", tmp_path / "small")
    (name, kw), (small, _) = client.calls
    assert (name, small) == ("upload_file", "put_object")
    assert (kw["filename"], kw["bucket"], kw["Key"]) == (str(tmp_path / "big"), "bkt", "root/big")
    assert kw["ExtraArgs"] == {"Metadata": {SHA256_META: "f" * 64}}
    assert kw["Config"].multipart_threshold == 8


def test_an_exclusive_large_file_is_one_conditional_put(client, tmp_path, monkeypatch):
    """s3transfer sends no If-None-Match: a file that must be created exclusively goes up whole."""
    monkeypatch.setattr(s3_store_module, "_MULTIPART_FROM", 4)
    (tmp_path / "big").write_bytes(b"x" * 10)
    store().put_file("big", tmp_path / "big", exclusive=True)
    assert [(n, kw.get("IfNoneMatch")) for n, kw in client.calls] == [("put_object", "*")]


def test_a_failed_upload_names_the_object_and_the_endpoint(client, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_store_module, "_MULTIPART_FROM", 1)
    (tmp_path / "big").write_bytes(b"xx")
    client.failures["upload_file"] = client_error("AccessDenied", 403, "denied")
    with pytest.raises(StoreError) as e:
        store().put_file("big", tmp_path / "big")
    assert str(e.value) == (
        "upload to s3://bkt/root/big at endpoint minio.example:9000 failed: AccessDenied: denied"
    )


def test_get_bytes_reads_and_closes_the_body(client):
    client.objects["root/a"] = b"content"
    assert store().get_bytes("a") == b"content"
    assert client.calls == [("get_object", {"Bucket": "bkt", "Key": "root/a"})]
    assert client.bodies[0].closed


def test_a_body_cut_short_is_a_store_error_and_the_body_is_closed(client, monkeypatch):
    client.objects["root/a"] = b"content"
    real = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: real(**kw, _fail_after=3))
    with pytest.raises(StoreError) as e:
        store().get_bytes("a")
    assert str(e.value) == (
        "download of s3://bkt/root/a at endpoint minio.example:9000 failed: "
        "the connection was dropped (3 attempt(s))"
    )
    assert client.bodies[0].closed


def test_get_file_writes_the_whole_object_or_nothing(client, tmp_path, monkeypatch):
    client.objects["root/a"] = b"123456789"
    store().get_file("a", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"123456789"
    real = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: real(**kw, _fail_after=5))
    with pytest.raises(StoreError) as e:
        store().get_file("a", tmp_path / "cut")
    assert str(e.value).startswith("download of s3://bkt/root/a at endpoint minio.example:9000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no cut, no .part-cut


def test_a_missing_object_is_a_store_error_that_names_it(client):
    client.failures["get_object"] = client_error("NoSuchKey", 404, "The key does not exist")
    with pytest.raises(StoreError) as e:
        store().get_file("gone", "/nonexistent/dest")
    assert str(e.value) == (
        "download of s3://bkt/root/gone at endpoint minio.example:9000 failed: "
        "NoSuchKey: The key does not exist"
    )


def test_stat_gives_size_and_digest_and_none_for_a_missing_object(client):
    client.objects["root/a"] = b"12345"
    assert store().stat("a") == ObjectInfo("a", 5, "d" * 64)
    assert client.calls[-1] == ("head_object", {"Bucket": "bkt", "Key": "root/a"})
    for missing in (
        client_error("404", 404),
        client_error("NoSuchKey", 400),
        client_error("", 404),
    ):
        client.failures["head_object"] = missing
        assert store().stat("b") is None


def test_an_object_written_by_another_tool_has_no_digest(client):
    client.objects["root/a"] = b"12345"
    client.without_metadata.add("root/a")
    assert store().stat("a") == ObjectInfo("a", 5, None)


def test_a_stat_that_fails_otherwise_says_so(client):
    client.failures["head_object"] = client_error("AccessDenied", 403, "no")
    with pytest.raises(StoreError) as e:
        store().stat("a")
    assert str(e.value) == (
        "stat of s3://bkt/root/a at endpoint minio.example:9000 failed: AccessDenied: no"
    )


def test_a_listing_is_relative_to_the_store_and_ends_at_the_folder(client):
    keys = ["root/a/1", "root/a/2/x", "root/a/3", "root/ab/4", "root/b", "other/a/5"]
    client.objects.update({k: b"x" * n for n, k in enumerate(keys, 1)})
    for prefix in ("a", "a/", "/a/"):
        assert list(store().list(prefix)) == [
            ObjectInfo("a/1", 1), ObjectInfo("a/2/x", 2), ObjectInfo("a/3", 3)]  # fmt: skip
    assert [c[1]["Prefix"] for c in client.calls] == ["root/a/"] * 3
    assert [i.key for i in store().list()] == ["a/1", "a/2/x", "a/3", "ab/4", "b"]
    assert client.calls[-1][1] == {"Bucket": "bkt", "Prefix": "root/"}


def test_a_store_at_the_bucket_root_lists_and_names_whole_keys(client):
    client.objects.update({"a/1": b"x", "b": b"yy"})
    bucket = store(prefix="")
    assert list(bucket.list()) == [ObjectInfo("a/1", 1), ObjectInfo("b", 2)]
    assert client.calls[-1][1] == {"Bucket": "bkt", "Prefix": ""}
    assert list(bucket.list("a")) == [ObjectInfo("a/1", 1)]
    bucket.put_bytes("/c", b"z")
    assert client.calls[-1][1]["Key"] == "c"
    assert bucket.uri("c") == "s3://bkt/c" and bucket.uri() == "s3://bkt"


def test_keys_under_a_prefix_are_kept_as_listed(client):
    store().put_bytes("a//b", b"1")
    store().put_bytes("", b"2")
    assert [kw["Key"] for _, kw in client.calls] == ["root/a//b", "root"]


def test_a_listing_that_fails_names_the_prefix(client):
    client.failures["list_objects_v2"] = bx.EndpointConnectionError(endpoint_url="http://x")
    with pytest.raises(StoreError) as e:
        list(store().list("a"))
    assert str(e.value) == (
        "listing of s3://bkt/root/a at endpoint minio.example:9000 failed: "
        "connection refused or host unreachable (3 attempt(s))"
    )


def test_scan_names_what_it_does_not_read(client):
    keys = ["ok.png", ".part-ok.png", "/x", "./y", "../z"]
    client.objects.update({f"root/d/{k}": b"x" for k in keys})
    found, skipped = store().scan("d")
    assert found == [ObjectInfo("d/ok.png", 1)]
    odd = "a key with an empty, '.' or '..' part: unsupported"
    assert skipped == [  # in the listing's order
        Skipped("d/../z", odd),
        Skipped("d/./y", odd),
        Skipped("d/.part-ok.png", "an unfinished write (.part-*)"),
        Skipped("d//x", odd),
    ]


def test_an_unfinished_write_is_found_at_any_depth_and_the_whole_store_is_scanned(client):
    client.objects.update({"root/d/sub/.part-x": b"x", "root/top": b"x"})
    found, skipped = store().scan()
    assert found == [ObjectInfo("top", 1)]
    assert skipped == [Skipped("d/sub/.part-x", "an unfinished write (.part-*)")]


def test_delete_asks_for_the_full_key_and_says_when_it_fails(client):
    store().delete("a/b")
    assert client.calls == [("delete_object", {"Bucket": "bkt", "Key": "root/a/b"})]
    client.failures["delete_object"] = client_error("AccessDenied", 403, "no")
    with pytest.raises(StoreError) as e:
        store().delete("a/b")
    assert str(e.value).startswith("delete of s3://bkt/root/a/b at endpoint minio.example:9000")


def test_unfinished_uploads_are_listed_relative_to_the_store_and_aborted_by_id(client):
    assert store().incomplete_uploads() == [("big/x.bin", "u1")]
    assert client.calls.pop() == ("list_multipart_uploads", {"Bucket": "bkt", "Prefix": "root/"})
    assert store().incomplete_uploads("big") == [("big/x.bin", "u1")]
    store().abort_upload("big/x.bin", "u1")
    assert client.calls == [
        ("list_multipart_uploads", {"Bucket": "bkt", "Prefix": "root/big/"}),
        ("abort_multipart_upload", {"Bucket": "bkt", "Key": "root/big/x.bin", "UploadId": "u1"}),
    ]


def test_listing_unfinished_uploads_that_fails_says_so(client):
    client.failures["list_multipart_uploads"] = client_error("AccessDenied", 403, "no")
    with pytest.raises(StoreError) as e:
        store().incomplete_uploads("big")
    assert str(e.value) == (
        "listing uploads under s3://bkt/root/big at endpoint minio.example:9000 failed: "
        "AccessDenied: no"
    )


def test_a_bucket_is_created_only_when_it_is_missing(client):
    store().ensure_bucket()
    assert client.calls == [("head_bucket", {"Bucket": "bkt"})]
    client.failures["head_bucket"] = client_error("404", 404)
    store().ensure_bucket()
    assert client.calls[-1] == ("create_bucket", {"Bucket": "bkt"})
    client.failures["create_bucket"] = client_error("AccessDenied", 403, "no")
    with pytest.raises(StoreError) as e:
        store().ensure_bucket()
    assert str(e.value) == (
        "creating bucket of s3://bkt/root at endpoint minio.example:9000 failed: AccessDenied: no"
    )

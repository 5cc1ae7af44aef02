"""The store module against a local folder and a real S3 store (SeaweedFS on 127.0.0.1)."""

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from components import store as st
from components.common.errors import InputError
from components.store import s3


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        return st.open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return st.open_store(f"s3://{bucket}/root", request.getfixturevalue("s3_env"))


def test_put_get_list_stat_delete(any_store, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello")
    any_store.put_file("x/a.bin", src, sha256=st.sha256_file(src))
    any_store.put_bytes("x/b/c.txt", b"world")
    assert any_store.get_bytes("x/a.bin") == b"hello"
    assert [o.key for o in any_store.list("x")] == ["x/a.bin", "x/b/c.txt"]
    info = any_store.stat("x/a.bin")
    assert info.size == 5 and info.sha256 == st.sha256_file(src)
    assert any_store.stat("x/missing") is None
    any_store.get_file("x/b/c.txt", tmp_path / "c.txt")
    assert (tmp_path / "c.txt").read_bytes() == b"world"
    any_store.delete("x/a.bin")
    assert any_store.stat("x/a.bin") is None


def test_missing_object_error_names_uri(any_store):
    with pytest.raises(st.StoreError, match="missing.bin"):
        any_store.get_bytes("missing.bin")


@pytest.mark.parametrize(
    "uri", ["s3://", "s3://a/x", "s3://user:pw@bucket/x", "s3://bad_bucket!/x"]
)
def test_bad_s3_uri(uri):
    with pytest.raises(ValueError) as e:
        st.parse_s3_uri(uri)
    assert "pw" not in str(e.value)


@pytest.mark.parametrize(
    "endpoint,expected",
    [
        ("minio:9000", ("minio:9000", True)),
        ("http://127.0.0.1:9000", ("127.0.0.1:9000", False)),
        ("https://s3.example.com/", ("s3.example.com", True)),
    ],
)
def test_parse_endpoint(endpoint, expected):
    assert s3.parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["", "http://", "host:port", "http://a:1/path", "u:p@host:1"])
def test_bad_endpoint(endpoint):
    with pytest.raises(ValueError, match="s3_endpoint"):
        s3.parse_endpoint(endpoint)


def test_unsupported_scheme():
    with pytest.raises(ValueError, match="gs://b"):
        st.open_store("gs://b/x")


@pytest.mark.parametrize(
    "name, value, what",
    [("MNIST_S3_ATTEMPTS", "three", "an integer"), ("MNIST_S3_READ_TIMEOUT", "30s", "a number")],
)
def test_a_bound_in_the_environment_that_is_no_number_is_named(monkeypatch, name, value, what):
    """The README documents these variables; float's bare ValueError would be a traceback."""
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as refused:
        st.open_store("s3://bucket/p", "localhost:9000")
    assert str(refused.value) == f"{name}={value!r} is not {what}"


def test_a_local_store_that_is_a_loop_of_links_is_a_store_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(st.StoreError, match="a: a loop of symbolic links$"):
        st.open_store(str(tmp_path / "a"))


def test_local_key_cannot_escape(tmp_path):
    with pytest.raises(st.StoreError, match="outside the store"):
        st.open_store(str(tmp_path)).put_bytes("../evil", b"x")


def test_a_missing_bucket_is_named_and_never_created(s3_bucket, s3_env):
    s = st.open_store(f"s3://no-such-bucket-{s3_bucket}/p", s3_env)
    with pytest.raises(st.StoreError, match="NoSuchBucket") as e:
        s.put_bytes("k", b"x")
    msg = str(e.value)
    assert f"s3://no-such-bucket-{s3_bucket}/p/k" in msg and "127.0.0.1" in msg
    assert "fake-secret" not in msg


@pytest.mark.parametrize("which", ["secret", "key"])
def test_wrong_credentials_are_refused_by_the_server_and_hidden(
    s3_bucket, s3_env, monkeypatch, which
):
    """The server checks every signature: a wrong secret or an unknown key is refused, in one
    line that names the bucket and never the credentials."""
    if which == "secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-Xy7-do-not-log")
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY0000")
    with pytest.raises(st.StoreError) as e:
        st.open_store(f"s3://{s3_bucket}/p", s3_env).put_bytes("k", b"x")
    msg = str(e.value)
    assert ("SignatureDoesNotMatch" if which == "secret" else "InvalidAccessKeyId") in msg
    assert s3_bucket in msg
    assert "wrong-secret" not in msg and "fake-secret" not in msg and "AKIAUNKNOWN" not in msg


def test_the_stores_a_step_opens_share_one_client(s3_env, monkeypatch):
    """Five prefixes on one endpoint: one boto3 client and pool, not five."""
    stores = [st.open_store(f"s3://bucket-{i}/p", s3_env) for i in range(5)]
    assert len({id(store.client) for store in stores}) == 1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")  # other credentials: another client
    assert st.open_store("s3://bucket-0/p", s3_env).client is not stores[0].client
    assert s3.client(s3_env, s3.Bounds(attempts=1)) is not stores[0].client


def test_an_exclusive_create_refuses_the_second_writer(any_store):
    any_store.put_bytes("v/1/CLAIM.json", b"first", exclusive=True)
    with pytest.raises(st.AlreadyExists, match="CLAIM.json already exists"):
        any_store.put_bytes("v/1/CLAIM.json", b"second", exclusive=True)
    assert any_store.get_bytes("v/1/CLAIM.json") == b"first"


def test_concurrent_exclusive_creators_get_exactly_one_success(any_store):
    """Sixteen writers released at once on one key (`If-None-Match: *` on S3): one wins, the
    fifteen others are told it exists, and the object holds the winner's bytes."""
    writers = 16
    start = threading.Barrier(writers)

    def create(n: int) -> int | None:
        start.wait(timeout=30)
        try:
            any_store.put_bytes("race/CLAIM.json", f"writer {n}".encode(), exclusive=True)
            return n
        except st.AlreadyExists:
            return None

    with ThreadPoolExecutor(writers) as pool:
        won = [n for n in pool.map(create, range(writers)) if n is not None]
    assert len(won) == 1
    assert any_store.get_bytes("race/CLAIM.json") == f"writer {won[0]}".encode()


def test_a_listing_longer_than_a_page_is_whole_and_sorted(any_store):
    """S3 answers 1000 keys a page: 2100 keys take three pages, none lost or repeated; deleted
    keys are gone from the next listing."""
    keys = [f"many/{i:05d}.png" for i in range(2100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: any_store.put_bytes(key, b"x"), keys))
    assert [o.key for o in any_store.list("many")] == keys
    for key in keys[999:1002]:
        any_store.delete(key)
    assert [o.key for o in any_store.list("many")] == keys[:999] + keys[1002:]


def _write_from_a_fork(uri: str, endpoint: str, n: int, parents_client: int) -> None:
    store = st.open_store(uri, endpoint)
    if id(store.client) == parents_client:  # the very object, inherited with its sockets
        raise SystemExit(3)
    for i in range(30):
        store.put_bytes(f"forked/{n}/{i}", f"process {n}, object {i}; ".encode() * 40)


def test_forked_processes_never_share_a_connection(s3_bucket, s3_env):
    """Processes forked after the parent used the store (exports racing in tests, any forking
    caller) get clients of their own: on one shared keep-alive connection, requests interleave
    and one object's body can become another request's bytes."""
    uri = f"s3://{s3_bucket}/p"
    parent = st.open_store(uri, s3_env)
    parent.put_bytes("warm", b"x")  # the parent now holds a pooled connection
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=_write_from_a_fork, args=(uri, s3_env, n, id(parent.client)))
        for n in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    for n in range(3):
        for i in range(30):
            expected = f"process {n}, object {i}; ".encode() * 40
            assert parent.get_bytes(f"forked/{n}/{i}") == expected, f"forked/{n}/{i}"

"""Properties of the parsers of outside input and of the redaction (hypothesis): parameters
files, records read back from the store, model version names, run ids, URLs with credentials,
and text shown to people. Each property says what must hold for every input, not for ours."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

import click
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from components.common import spec
from components.common.parameters import ParameterError, shown_value
from components.common.records import RecordError, parse_record, plain_name
from components.common.redact import printable, redact_text, redact_url, refuse_credentials, shown
from pipeline.commands.options import KFP_ID
from pipeline.params import TYPES, load_params_file
from tests.fuzz import FUZZ

SETTINGS = FUZZ
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# --- redaction: no generated secret survives -------------------------------------------------

# A password may hold any printable character but white space (which ends a URL in prose).
PASSWORD = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="*"),
    min_size=8,
    max_size=24,
)
# A query or header value as a client sends it: the URL-safe characters, percent-encoded.
TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-._~%+/="),
                min_size=8, max_size=40)  # fmt: skip
WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"), min_size=1, max_size=10)
HOST = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", WORD, WORD),
    st.builds(lambda port: f"127.0.0.1:{port}", st.integers(1, 65535)),
    st.just("[::1]:9000"),
)
PATH = st.builds(lambda parts: "/" + "/".join(parts), st.lists(WORD, max_size=3))
SECRET_PARAM = st.sampled_from(
    ["token", "access_token", "X-Amz-Signature", "X-Amz-Credential", "sig", "signature",
     "password", "api_key", "secret", "X-Amz-Security-Token", "auth"]
)  # fmt: skip
HEADER = st.sampled_from(
    ["Authorization: Bearer {}", "Authorization: Basic {}", "authorization={}",
     "X-Amz-Security-Token: {}", "Cookie: session={}", "{{'Authorization': 'Bearer {}'}}",
     '{{"access_token": "{}"}}', "aws_secret_access_key={}"]
)  # fmt: skip


@st.composite
def carrying_a_secret(draw) -> tuple[str, str]:
    """(text, secret): a URL, endpoint or header carrying `secret`, inside other text."""
    form = draw(st.sampled_from(["userinfo", "encoded", "query", "fragment", "header", "bare"]))
    scheme = draw(st.sampled_from(["http", "https", "s3", "HTTPS"]))
    host, path, user = draw(HOST), draw(PATH), draw(WORD)
    secret = draw(TOKEN if form in ("query", "fragment", "header") else PASSWORD)
    name = draw(SECRET_PARAM)
    carrier = {
        "userinfo": f"{scheme}://{user}:{secret}@{host}{path}",
        "encoded": f"{scheme}://{user}:{quote(secret, safe='')}@{host}{path}",
        "query": f"{scheme}://{host}{path}?a=1&{name}={secret}&b=2",
        "fragment": f"{scheme}://{host}{path}#{name}={secret}",
        "header": draw(HEADER).format(secret),
        "bare": f"{user}:{secret}@{host}",
    }[form]
    if form == "encoded":
        secret = quote(secret, safe="")
    before = draw(st.sampled_from(["", "fetching ", "source '", "(", 'url="', "error: "]))
    after = draw(st.sampled_from(["", " failed", "'", ")", '"', ": HTTP 404", ".\nnext line"]))
    text = before + carrier + after
    assume(text.count(secret) == 1 and secret not in redact_text(before + after))
    return text, secret


@SETTINGS
@given(carrying_a_secret())
def test_no_secret_survives_redaction(case):
    text, secret = case
    assert secret not in redact_text(text)
    assert secret not in shown(text) and secret not in shown(text, newlines=True)


@SETTINGS
@given(carrying_a_secret())
def test_no_secret_survives_a_url_redaction(case):
    text, secret = case
    assert secret not in redact_url(text.strip())


@SETTINGS
@given(
    st.sampled_from(["http", "https", "s3"]),
    HOST,
    PATH,
    st.lists(st.tuples(st.sampled_from(["page", "v", "prefix", "limit", "a"]), WORD), max_size=3),
)
def test_a_url_without_secrets_is_left_as_it_is(scheme, host, path, query):
    """A JSON document of runs keeps its `?page=2`: only what carries a secret is masked."""
    url = f"{scheme}://{host}{path}" + (
        "?" + "&".join(f"{k}={v}" for k, v in query) if query else ""
    )
    assert redact_text(f"see {url} now") == f"see {url} now"
    assert redact_url(url) == url.split("?")[0]


@SETTINGS
@given(st.text(max_size=200))
def test_redaction_is_idempotent_and_total(text):
    once = redact_text(text)
    assert redact_text(once) == once


@SETTINGS
@given(carrying_a_secret())
def test_a_parameter_carrying_a_secret_is_refused_and_the_refusal_does_not_show_it(case):
    text, secret = case
    url = text.strip("'\"()").split()[-1] if "://" in text else ""
    assume(url.startswith(("http", "s3", "HTTP")) and secret in url)
    with pytest.raises(ValueError) as e:
        refuse_credentials("source", url)
    with pytest.raises(ValueError) as without:  # the same URL with a neutral secret
        refuse_credentials("source", url.replace(secret, "Q" * len(secret)))
    assume(secret not in str(without.value))  # the fixed words of the message may hold it
    assert secret not in str(e.value)


# --- control characters ----------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=200))
def test_printable_text_holds_no_control_character(text):
    assert not CONTROL.search(printable(text))
    kept = printable(text, newlines=True)
    assert not CONTROL.search(kept.replace("\n", "").replace("\t", ""))
    assert kept.count("\n") == text.count("\n")


@SETTINGS
@given(
    st.text(
        st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]),
        max_size=100,
    )
)
def test_printable_leaves_ordinary_text_alone(text):
    assert printable(text) == text


# --- parameters files ------------------------------------------------------------------------

SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30)
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _load(content: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_bytes(content)
        return load_params_file(path)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_give_values_or_one_parameter_error(content):
    try:
        values = _load(content)
    except ParameterError as e:
        assert "\n" not in str(e) and len(str(e)) < 800
    else:
        assert set(values) <= set(TYPES)


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(TYPES)) | st.text(max_size=10), VALUE, max_size=5))
def test_any_mapping_gives_typed_values_or_one_parameter_error(mapping):
    try:
        values = _load(json.dumps(mapping, default=str).encode())
    except ParameterError as e:
        assert "\n" not in str(e) and len(str(e)) < 800
    except ValueError:  # json.dumps of NaN is valid YAML (.nan), so this is not reached
        raise
    else:
        for name, value in values.items():
            assert isinstance(value, TYPES[name]) and not (
                TYPES[name] is not bool and isinstance(value, bool)
            )


@SETTINGS
@given(st.text(max_size=400))
def test_any_yaml_text_gives_values_or_one_parameter_error(text):
    try:
        _load(text.encode("utf-8", "surrogatepass"))
    except ParameterError as e:
        assert len(str(e)) < 800


@SETTINGS
@given(VALUE)
def test_a_value_in_a_message_is_bounded_and_printable(value):
    text = shown_value(value)
    assert len(text) < 400 and not CONTROL.search(text)


# --- records read back from the store, model versions, run ids -------------------------------


@SETTINGS
@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), VALUE))
def test_any_record_is_an_object_with_typed_fields_or_one_record_error(raw):
    try:
        record = parse_record(raw, "x.json", required={"a": int}, optional={"b": str})
    except RecordError as e:
        assert str(e).startswith("x.json: ")
    else:
        assert isinstance(record, dict) and type(record["a"]) is int
        assert "b" not in record or isinstance(record["b"], str)


@SETTINGS
@given(st.text(max_size=40))
def test_a_plain_name_never_climbs_out_of_its_folder(name):
    try:
        plain_name(name, "MANIFEST.json")
    except RecordError:
        return
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert not name.startswith(".") and not CONTROL.search(name)
    assert Path("/base", name).resolve().parent == Path("/base")


@SETTINGS
@given(st.text(max_size=12) | st.integers(0, 10**6).map(str))
def test_a_model_version_is_a_canonical_ascii_number(name):
    version = spec.version_number(name)
    assert version is None or str(version) == name


@SETTINGS
@given(st.text(max_size=200))
def test_a_run_id_that_passes_is_safe_in_an_api_path(text):
    try:
        value = KFP_ID.convert(text, None, None)
    except click.BadParameter as e:
        assert not CONTROL.search(e.format_message())
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) and ".." not in value

"""Pipeline parameter parsing and validation: every refusal names the parameter."""

import re

import pytest

from pipeline.params import ParameterError, parse_assignments, validate_arguments


def test_parse_typed_values():
    values = parse_assignments(
        ["epochs=3", "learning-rate=0.01", "verify_checksums=false", "store_uri=s3://b/p=q"]
    )
    assert values == {
        "epochs": 3,
        "learning_rate": 0.01,
        "verify_checksums": False,
        "store_uri": "s3://b/p=q",
    }


@pytest.mark.parametrize(
    "pair,message",
    [
        ("epochs", "name=value"),
        ("epoch=3", "unknown parameter 'epoch'"),
        ("epochs=three", "epochs='three' is not a valid int"),
        ("verify_checksums=maybe", "not a boolean"),
    ],
)
def test_parse_errors(pair, message):
    with pytest.raises(ParameterError, match=message):
        parse_assignments([pair])


@pytest.mark.parametrize(
    "values,name",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"min_accuracy": -0.1}, "min_accuracy"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"train_limit": -5}, "train_limit"),
        ({"max_failed_fraction": 2.0}, "max_failed_fraction"),
        ({"store_uri": "s3://"}, "store_uri"),
        ({"store_uri": "gs://bucket/x"}, "store_uri"),
        ({"images_uri": "s3://x/y"}, "images_uri"),
        ({"s3_endpoint": "host:port"}, "s3_endpoint"),
        ({"source": ""}, "source"),
        ({"serving_endpoint": "http://serving:8500"}, "serving_endpoint"),
        ({"serving_endpoint": "serving"}, "serving_endpoint"),
    ],
)
def test_out_of_range_values_name_the_parameter(values, name):
    with pytest.raises(ParameterError, match=name):
        validate_arguments(values)


def test_good_values_pass():
    values = {
        "epochs": 1,
        "batch_size": 1,
        "min_accuracy": 0.0,
        "learning_rate": 1.0,
        "store_uri": "s3://mlpipeline/mnist",
        "s3_endpoint": "http://127.0.0.1:9000",
        "images_uri": "/tmp/images",
        "source": "https://example.org/mnist/",
    }
    assert validate_arguments(values) is values


@pytest.mark.parametrize(
    "values,message",
    [
        ({"learning_rate": float("nan")}, "learning_rate=nan is out of range: must be a finite"),
        ({"min_accuracy": float("nan")}, "min_accuracy=nan"),
        ({"max_failed_fraction": float("inf")}, "max_failed_fraction=inf"),
        ({"seed": -1}, "seed=-1 is out of range: must be from 0 to 4294967295"),
        ({"seed": 2**32}, "seed=4294967296"),
        ({"epochs": 10**12}, "epochs=1000000000000 is out of range: must be from 1 to 1000"),
        ({"train_limit": 2**63}, "train_limit"),
        ({"batch_size": 10**9}, "batch_size"),
        ({"store_uri": ""}, "store_uri='' is refused: must not be empty"),
        ({"store_uri": "  "}, "store_uri"),
        ({"epochs": True}, "epochs=True is not a valid int"),
    ],
)
def test_values_that_used_to_pass_and_fail_later_are_refused_first(values, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        validate_arguments(values)


@pytest.mark.parametrize(
    "values",
    [
        {"source": "http://[::1/mnist/"},
        {"source": "s3://[bucket/mnist.zip"},
        {"store_uri": "s3://[bucket/p"},
        {"store_uri": "file://[x/store"},
        {"images_uri": "https://[fe80::1/images"},
    ],
)
def test_a_url_urlsplit_cannot_read_is_refused_naming_the_parameter(values):
    """A '[' with no ']' makes urlsplit raise a bare ValueError: a traceback, once nothing but
    a StepError is reported in one line."""
    (name,) = values
    with pytest.raises(ParameterError, match=f"^{name}=.* is refused: ") as refused:
        validate_arguments(values)
    assert "IPv6 URL" in str(refused.value)


@pytest.mark.parametrize("name", ["store_uri", "images_uri", "results_uri"])
def test_a_nul_in_a_path_is_refused_naming_the_parameter(name):
    with pytest.raises(ParameterError, match=f"^{name}=.* holds a NUL character"):
        validate_arguments({name: "store\x00/x"})


SECRET = "s3cr3t-Zq9xW3"


@pytest.mark.parametrize(
    "values",
    [
        {"source": f"http://user:{SECRET}@mirror.example/mnist/"},
        {"source": f"https://mirror.example/mnist.zip?token={SECRET}"},
        {"source": f"https://b.s3.amazonaws.com/m.zip?X-Amz-Signature={SECRET}&X-Amz-Credential=a"},
        {"s3_endpoint": f"http://minio:{SECRET}@minio:9000"},
        {"store_uri": f"s3://key:{SECRET}@bucket/p"},
        {"images_uri": f"http://u:{SECRET}@h/images"},
    ],
)
def test_credentials_in_parameters_are_refused_without_echoing_them(values):
    """kfp prints every step's inputs and the UI shows them: secrets must never get there."""
    with pytest.raises(ParameterError) as e:
        validate_arguments(values)
    assert SECRET not in str(e.value)
    assert "environment" in str(e.value) or "credentials" in str(e.value)


def test_each_bound_is_stated_in_the_ui_description():
    from components.common.parameters import BY_NAME

    assert BY_NAME["epochs"].description.endswith("Allowed: 1 to 1000.")
    assert BY_NAME["learning_rate"].description.endswith("Allowed: above 0, at most 1.")


def test_the_docs_document_every_parameter():
    from components.common.parameters import PARAMETERS
    from tests.conftest import REPO

    doc = (REPO / "docs" / "PARAMETERS.md").read_text()
    table = doc.split("Store layout:", 1)[0]
    for param in PARAMETERS:
        assert f"`{param.name}`" in table, f"docs/PARAMETERS.md's table lacks {param.name}"

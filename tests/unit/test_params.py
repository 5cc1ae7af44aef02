"""Pipeline parameter parsing and validation: every refusal names the parameter."""

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

"""Fixtures of the local-run tier."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REPO


@pytest.fixture
def s3(s3_endpoint, s3_bucket):
    env = {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(REPO),
    }
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
    )
    return {"env": env, "client": client, "bucket": s3_bucket, "endpoint": s3_endpoint}

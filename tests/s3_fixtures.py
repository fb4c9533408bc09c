"""pytest plugin: a real S3 endpoint (moto's server over HTTP on 127.0.0.1) and a fresh bucket per test.

Loaded from tests/conftest.py (`pytest_plugins`). boto3 talks HTTP to the server exactly as to AWS;
nothing in boto3 is mocked.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

FAKE_KEY_ID = "AKIADRGUITESTKEY0001"
FAKE_SECRET = "drgui+Test/Secret0123456789abcdefEXAMPLE"
_counter = itertools.count()


@dataclass
class S3Bucket:
    endpoint: str
    name: str
    client: Any

    def settings(self, prefix: str = "", **extra: Any) -> dict[str, Any]:
        """Destination/source settings using the standard AWS chain (env vars set by the fixture)."""
        return {
            "bucket": self.name,
            "prefix": prefix,
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "credentials": "environment",
            "part_size_mb": 5,
            **extra,
        }

    def list_keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        return self.client.list_multipart_uploads(Bucket=self.name, Prefix=prefix).get("Uploads", [])


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET, region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for the standard AWS chain; no real AWS config file is read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3_bucket(moto_endpoint: str, aws_env: None) -> Iterator[S3Bucket]:
    client = s3_client(moto_endpoint)
    name = f"drgui-test-{os.getpid()}-{next(_counter)}"
    client.create_bucket(Bucket=name)
    yield S3Bucket(moto_endpoint, name, client)
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    pages = client.get_paginator("list_object_versions").paginate(Bucket=name)
    for page in pages:
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(
                Bucket=name, Key=item["Key"], VersionId=item["VersionId"], BypassGovernanceRetention=True
            )
    client.delete_bucket(Bucket=name)

"""What ``sources/objects.py`` takes from the environment, without a server: the region
as the AWS tools find it, the endpoint, and the one line a store's refusal becomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.s3server import environment

from caracal_forensics.errors import InputError
from caracal_forensics.sources import objects

CLEAR = {"AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_PROFILE": None,
         "AWS_DEFAULT_PROFILE": None}


def test_the_region_comes_from_the_environment_then_the_profile(tmp_path: Path):
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n[profile case]\nregion = ap-south-1\n")
    with environment({**CLEAR, "AWS_CONFIG_FILE": str(config)}):
        assert objects.configured_region() == "eu-west-1"
        with environment({"AWS_PROFILE": "case"}):
            assert objects.configured_region() == "ap-south-1"
            with environment({"AWS_REGION": "us-west-2"}):
                assert objects.configured_region() == "us-west-2"
    with environment({**CLEAR, "AWS_CONFIG_FILE": str(tmp_path / "none")}):
        assert objects.configured_region() is None


def test_the_endpoint_option_comes_first():
    with environment({"CARACAL_FORENSICS_S3_ENDPOINT": None, "AWS_ENDPOINT_URL_S3": None,
                      "AWS_ENDPOINT_URL": "http://b:9000"}):
        assert objects.endpoint() == "http://b:9000"
        with environment({"AWS_ENDPOINT_URL_S3": "http://s3only:9000"}):
            assert objects.endpoint() == "http://s3only:9000"
            with environment({"CARACAL_FORENSICS_S3_ENDPOINT": "http://a:9000"}):
                assert objects.endpoint() == "http://a:9000"


def test_urls():
    assert objects.is_object_url("s3://b/k") and objects.is_object_url("S3://b/")
    assert not objects.is_object_url("./s3:/b") and not objects.is_object_url(None)
    assert objects.split_url("s3://bucket/audit/2026/") == ("bucket", "audit/2026/")
    with pytest.raises(InputError, match="names no bucket"):
        objects.split_url("s3:///audit/")


def test_a_refusal_is_one_line_without_request_ids():
    error = OSError("When listing objects under key 'a' in bucket 'b': AWS Error "
                    "ACCESS_DENIED during ListObjectsV2 operation: Access Denied "
                    "(Request ID: 0123ABC)\nmore")
    said = str(objects.store_error("s3://b/a/", error, "cannot list"))
    assert said == ("s3://b/a/: cannot list: access denied (ListObjectsV2: Access Denied); "
                    "check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the bucket's "
                    "policy")

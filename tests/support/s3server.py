"""A real S3-compatible server on the loopback address for the object storage tests.

moto's server mode (``moto_server``, from the dev extra) in a child process, with request
authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``): the first requests make an IAM user
and its access key, every later one must be signed with that key, so that wrong
credentials are refused as a real store refuses them. Nothing here reaches AWS: the
endpoint is the child's port on 127.0.0.1, instance metadata is off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUCKET = "caracal-audit"
#: Requests made without authentication: create the user, its policy, its key.
_UNSIGNED_SETUP = 3


class S3Server:
    """moto_server on a free loopback port, with one user's key and one bucket."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = ""
        self.secret_key = ""
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        executable = Path(sys.executable).with_name("moto_server")
        if not executable.exists():
            raise RuntimeError("moto_server is not installed: pip install -e '.[dev]'")
        env = {**os.environ, **self.offline_env(),
               "INITIAL_NO_AUTH_ACTION_COUNT": str(_UNSIGNED_SETUP)}
        self._process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(self.port)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        iam = self._client("iam", "setup", "setup")
        iam.create_user(UserName="investigator")
        iam.put_user_policy(UserName="investigator", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="investigator")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.client().create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @staticmethod
    def offline_env() -> dict[str, str]:
        """What keeps every AWS client off the network and away from the user's files."""
        return {"AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def env(self) -> dict[str, str | None]:
        """The environment a reader of the bucket runs in: this server, this user's key.
        (None: unset, as ``support.cli.run_cli`` takes it.)"""
        return {**self.offline_env(), "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_SESSION_TOKEN": None,
                "AWS_PROFILE": None, "AWS_ENDPOINT_URL_S3": None,
                "CARACAL_FORENSICS_S3_ENDPOINT": None}

    def _client(self, service: str, access_key: str, secret_key: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def client(self):
        """A boto3 S3 client signed with the user's key (to upload the test objects)."""
        return self._client("s3", self.access_key, self.secret_key)

    def put(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=data)

    def upload(self, directory: Path, prefix: str) -> str:
        """Every file under ``directory`` as an object under ``prefix`` (its relative path
        the rest of the key); the prefix's URL."""
        client = self.client()
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                key = f"{prefix.rstrip('/')}/{path.relative_to(directory).as_posix()}"
                client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        return f"s3://{BUCKET}/{prefix.rstrip('/')}/"


@contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """Environment variables set (None: unset) meanwhile, as they were after."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""moto in server mode: a real HTTP endpoint on 127.0.0.1 that speaks the AWS APIs, for the
AWS check kinds and the SNS receiver. Not moto's in-process mocks: the code under test signs
and sends real requests through botocore's HTTP stack.

``moto_endpoint`` (session scope) starts ``python -m moto.server`` on a free port, points
the AWS default credential chain at fake credentials for the session (never real ones: the
shared config files and the instance metadata service are switched off too), yields the
URL, and stops the server by its PID. Tests use unique queue/bucket/secret names, so they
share one server without resetting it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Removed for the session: any of these would send a test's requests elsewhere or sign them
# with something other than the fake keys.
CLEARED_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
               "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
               "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake credentials in the environment, and no client cached under others."""
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    _reset_clients()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto server (``http://127.0.0.1:<port>``) with fake AWS credentials in the environment."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_credentials(monkeypatch)
        port = free_port()
        log = tmp_path_factory.mktemp("moto") / "moto.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log)
            _warm_up(url)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _reset_clients()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: os.PathLike[str]) -> None:
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited ({process.returncode}): {open(log).read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"moto server did not start within 60s: {open(log).read()[-2000:]}")


# One cheap call per service the tests use: moto imports a service's backend on its first
# request, which takes seconds for some (ECS) on a busy machine; better here, once, than
# inside a test's timeout.
WARM_UP = {"sqs": "list_queues", "s3": "list_buckets", "secretsmanager": "list_secrets", "ecs": "list_clusters",
           "cloudwatch": "list_metrics", "sts": "get_caller_identity", "sns": "list_topics", "ses": "list_identities"}


def _warm_up(url: str) -> None:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=10, read_timeout=120, retries={"total_max_attempts": 1})
    for service, method in WARM_UP.items():
        client = boto3.client(service, region_name=FAKE_ENV["AWS_DEFAULT_REGION"], endpoint_url=url, config=config)
        getattr(client, method)()


def _reset_clients() -> None:
    # Cached clients hold the session's credentials, and the worker process the environment
    # it was started with; a later test must not reuse either.
    for name in ("monitor.aws.clients", "monitor.aws.calls"):
        if name in sys.modules:
            sys.modules[name].reset()

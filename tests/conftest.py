"""Shared test fixtures: a moto server on loopback, spoken to over real HTTP with boto3's
normal configuration (AWS_ENDPOINT_URL), never in-process patching."""

from __future__ import annotations

import os

import pytest

from demo.stand_in import free_port, one_backup_per_transaction, one_table_request_at_a_time

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server():
    """The endpoint URL of a moto server for the whole session, with dummy credentials."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise

    one_backup_per_transaction()
    one_table_request_at_a_time()  # transactions atomic, as on AWS (the race tests interleave by hand)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                           "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def aws(moto_server):
    """A boto3 client factory bound to the moto server (via the environment, as users configure it)."""
    import boto3

    def client(service: str, region: str = REGION):
        return boto3.client(service, region_name=region)

    return client

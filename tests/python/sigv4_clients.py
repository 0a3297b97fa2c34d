"""boto3 against the local stack's signed APIs: what each case ends with, as JSON.

Usage: sigv4_clients.py CONNECTIONS_URL LAMBDA_URL CONNECTION_ID
Prints {"case": "ok" | "<error code>: <message>"} for: right credentials, a wrong
secret, a wrong region, no signature, a date 10 minutes old and a session token the
stack does not know, on @connections (PostToConnection) and Lambda (Invoke, DryRun).
"""

import datetime
import json
import sys

import boto3
import botocore.auth

try:  # botocore signs with the AWS Common Runtime when awscrt is installed
    import botocore.crt.auth as crt_auth
except ImportError:
    crt_auth = None
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

connections_url, lambda_url, connection_id = sys.argv[1:4]
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service, url, secret="local", region="us-east-1", token=None, config=NO_RETRIES):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=config,
    )


def outcome(call):
    try:
        call()
        return "ok"
    except ClientError as error:
        return f"{error.response['Error']['Code']}: {error.response['Error'].get('Message', '')}"


def post(**kwargs):
    api = client("apigatewaymanagementapi", connections_url, **kwargs)
    return lambda: api.post_to_connection(
        ConnectionId=connection_id, Data=b'{"type":"message","message":"from boto3"}'
    )


def invoke(**kwargs):
    api = client("lambda", lambda_url, **kwargs)
    return lambda: api.invoke(FunctionName="OnMessageFunction", InvocationType="DryRun")


def late(call):
    """The call signed as if the clock were 10 minutes behind."""
    modules = [m for m in (botocore.auth, crt_auth) if m is not None]
    real = botocore.auth.get_current_datetime

    def behind(*args, **kwargs):
        return real(*args, **kwargs) - datetime.timedelta(minutes=10)

    for module in modules:
        module.get_current_datetime = behind
    try:
        return outcome(call)
    finally:
        for module in modules:
            module.get_current_datetime = real


unsigned = Config(signature_version=UNSIGNED, retries={"max_attempts": 1, "mode": "standard"})
results = {
    "post": outcome(post()),
    "post_wrong_secret": outcome(post(secret="wrong")),
    "post_wrong_region": outcome(post(region="eu-west-1")),
    "post_unsigned": outcome(post(config=unsigned)),
    "post_expired": late(post()),
    "post_unknown_token": outcome(post(token="not-the-stacks")),
    "invoke": outcome(invoke()),
    "invoke_wrong_secret": outcome(invoke(secret="wrong")),
    "invoke_unsigned": outcome(invoke(config=unsigned)),
    "invoke_expired": late(invoke()),
}
print(json.dumps(results))

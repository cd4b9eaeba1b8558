"""boto3 plumbing shared by the route53 and eip adapters: clients and error translation.

Credentials, region and endpoint come the standard boto3 way (environment, profile, instance
or task role; ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` for local stand-ins).
Retries are botocore's own (``standard`` or ``adaptive`` mode): throttling
(``Throttling``, ``PriorRequestNotComplete``, ``RequestLimitExceeded``), 5xx answers and
connection errors are retried with backoff inside each call, so a throttled change is
delayed, never dropped. There is no retry loop of our own.

Every failure leaves here as an ``AdapterError`` (``AwsError`` keeps the AWS error code for
the callers that treat some codes as a lost race) whose message names what to fix: the
credentials, the permission (``service:Operation``, as an IAM policy spells it), or the
endpoint that could not be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from failover.errors import AdapterError, AwsError

# the request was not signed by a key AWS knows: wrong, revoked or expired credentials
AUTH_CODES = frozenset({
    "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "ExpiredToken",
    "ExpiredTokenException", "InvalidAccessKeyId", "AuthFailure", "InvalidToken", "IncompleteSignature",
})
# the credentials are fine but their policy does not allow the call
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"})


# The API models (large JSON files) are parsed once per process and shared; each client still
# gets a fresh botocore session, so credentials and region are resolved anew for each adapter.
_MODELS = botocore.loaders.create_loader()


def _session() -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _MODELS)
    return boto3.session.Session(botocore_session=core)



def make_client(
    service: str, *, region: str | None = None, retry_mode: str = "standard", max_attempts: int = 5,
    timeout: float = 10.0, session: Any = None,
) -> Any:
    """A boto3 client with botocore's retry mode and per-call timeouts."""
    config = Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},  # first try included
        connect_timeout=timeout,
        read_timeout=timeout,
        user_agent_extra="failover",
    )
    session = session or _session()
    try:
        return session.client(service, region_name=region, config=config)
    except NoRegionError:
        raise AdapterError(
            f"{service}: no AWS region: set aws_region in the adapter block, AWS_REGION or AWS_DEFAULT_REGION"
        ) from None


def permission(client: Any, operation: str) -> str:
    """The IAM action a call needs: ``route53:ChangeResourceRecordSets``."""
    return f"{client.meta.service_model.signing_name}:{operation}"


def translate(label: str, client: Any, operation: str, exc: Exception) -> AdapterError:
    """One operator-facing error for one failed call."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        code = str(error.get("Code", "")) or str(status)
        message = str(error.get("Message", "")).strip() or str(exc)
        if code in AUTH_CODES:
            return AwsError(
                f"{label}: AWS rejected the credentials ({code}: {message}); check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance/task role",
                code, operation,
            )
        if code in DENIED_CODES:
            return AwsError(
                f"{label}: missing permission {permission(client, operation)} ({code}: {message}); "
                "see docs/permissions.md",
                code, operation,
            )
        return AwsError(f"{label}: {operation} refused: {code}: {message}", code, operation)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsError(
            f"{label}: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with an instance/task role",
            "NoCredentials", operation,
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return AwsError(
            f"{label}: cannot reach {client.meta.endpoint_url} for {operation} ({exc})",
            "Unreachable", operation,
        )
    if isinstance(exc, ReadTimeoutError):
        return AwsError(
            f"{label}: {operation} got no answer from {client.meta.endpoint_url} in time; "
            "the outcome is unknown until the next read",
            "Timeout", operation,
        )
    return AwsError(f"{label}: {operation} failed: {exc}", type(exc).__name__, operation)


def call(label: str, client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """``client.<operation>(**params)``; every failure becomes an ``AdapterError``."""
    names = {api: py for py, api in client.meta.method_to_api_mapping.items()}
    method: Callable[..., dict[str, Any]] = getattr(client, names[operation])
    try:
        return method(**params)
    except (ClientError, BotoCoreError) as exc:
        raise translate(label, client, operation, exc) from None


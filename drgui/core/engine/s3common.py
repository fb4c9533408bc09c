"""What the S3 source and the S3 destination share: settings from CLI arguments, credentials, the boto3
client factory and the translation of botocore failures into errors that name the fix (never a key)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from drgui.core.errors import DestinationError, EnvironmentNotReady, UsageError
from drgui.core.plan.secrets import SecretStore, read_secret_file, remember

CREDENTIALS_KEYRING = "keyring"
CREDENTIALS_PROFILE = "aws-profile"
CREDENTIALS_ENVIRONMENT = "environment"
DEFAULT_MAX_ATTEMPTS = 8


def s3_settings_from_args(
    args: argparse.Namespace, for_source: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings for config.toml, secrets for the keyring) from `source|dest add ... s3` options."""
    if not args.bucket:
        raise UsageError("An S3 source or destination needs --bucket.", hint="e.g. --bucket acme-backups")
    settings: dict[str, Any] = {"bucket": args.bucket, "prefix": (args.prefix or "").strip("/")}
    for option in ("endpoint_url", "region"):
        if getattr(args, option, None):
            settings[option] = getattr(args, option)
    if not for_source:
        if getattr(args, "compat", False):
            settings["compat"] = True
        for option in ("storage_class", "sse"):
            if getattr(args, option, None):
                settings[option] = getattr(args, option)
    secrets: dict[str, str] = {}
    key_file = getattr(args, "secret_access_key_file", None)
    if key_file:
        if not args.access_key_id:
            raise UsageError("--secret-access-key-file needs --access-key-id.")
        secrets = {
            "access_key_id": args.access_key_id,
            "secret_access_key": read_secret_file(key_file, "secret access key"),
        }
    elif os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        secrets = {
            "access_key_id": args.access_key_id or os.environ["AWS_ACCESS_KEY_ID"],
            "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    elif args.aws_profile:
        settings["credentials"] = CREDENTIALS_PROFILE
        settings["profile"] = args.aws_profile
    else:
        interactive = sys.stdin.isatty() and os.environ.get("DRGUI_NO_PROMPT") != "1"
        if not interactive or not args.access_key_id:
            raise UsageError(
                "No S3 credentials given.",
                hint="Pass --access-key-id ID --secret-access-key-file FILE, or --aws-profile NAME, "
                "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (they are then stored in the keyring).",
            )
        import getpass

        secrets = {
            "access_key_id": args.access_key_id,
            "secret_access_key": getpass.getpass("S3 secret access key: "),
        }
    if secrets:
        settings["credentials"] = CREDENTIALS_KEYRING
    if not for_source:
        secrets |= _prune_key_from_args(args)
        margin = getattr(args, "object_lock_margin_days", None)
        if margin is not None:
            if margin < 0:
                raise UsageError("--object-lock-margin-days must be 0 or more.")
            settings["object_lock_margin_days"] = int(margin)
    for value in secrets.values():
        remember(value)
    return settings, secrets


def _prune_key_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The S3 destination's prune key (`--prune-access-key-id` + `--prune-secret-access-key-file`), kept
    in keyring entries of its own; without it prune uses the everyday key."""
    key_id = getattr(args, "prune_access_key_id", None)
    key_file = getattr(args, "prune_secret_access_key_file", None)
    if not key_id and not key_file:
        return {}
    if not (key_id and key_file):
        raise UsageError(
            "The prune key needs both --prune-access-key-id and --prune-secret-access-key-file.",
            hint="Or leave both out: prune then uses the everyday key (give it the prune key at prune time "
            "with DRGUI_PRUNE_ACCESS_KEY_ID and DRGUI_PRUNE_SECRET_ACCESS_KEY).",
        )
    return {
        "prune_access_key_id": key_id,
        "prune_secret_access_key": read_secret_file(key_file, "prune secret access key"),
    }


def describe_location(settings: dict[str, Any]) -> str:
    where = settings.get("endpoint_url") or (f"AWS {settings['region']}" if settings.get("region") else "AWS")
    prefix = str(settings.get("prefix", "")).strip("/")
    return f"s3://{settings['bucket']}/{prefix + '/' if prefix else ''} at {where}"


def make_client(
    settings: dict[str, Any],
    store: SecretStore | None,
    owner_kind: str,
    owner_name: str,
    *,
    keys: tuple[str, str] | None = None,
) -> Any:
    """The one boto3 client factory: retries with backoff and jitter, timeouts, the compat switch.
    `keys` (key id, secret) overrides the owner's own credentials (an S3 destination's prune key)."""
    import boto3
    import botocore.config
    from botocore.exceptions import ProfileNotFound

    config_args: dict[str, Any] = {
        "retries": {
            "total_max_attempts": int(settings.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
            "mode": str(settings.get("retry_mode", "standard")),
        },
        "connect_timeout": float(settings.get("connect_timeout", 10)),
        "read_timeout": float(settings.get("read_timeout", 60)),
        "max_pool_connections": 10,
        "user_agent_extra": "drgui",
    }
    if settings.get("compat"):
        config_args["request_checksum_calculation"] = "when_required"
        config_args["response_checksum_validation"] = "when_required"
    if settings.get("addressing_style"):
        config_args["s3"] = {"addressing_style": settings["addressing_style"]}
    mode = settings.get("credentials", CREDENTIALS_KEYRING)
    session_args: dict[str, Any] = {}
    if keys is not None:
        session_args["aws_access_key_id"], session_args["aws_secret_access_key"] = keys
    elif mode == CREDENTIALS_PROFILE:
        session_args["profile_name"] = settings.get("profile")
    elif mode == CREDENTIALS_KEYRING:
        if store is None:
            raise EnvironmentNotReady(f"S3 {owner_kind} '{owner_name}' needs the keyring for its keys.")
        key_id = store.get(owner_kind, owner_name, "access_key_id")
        secret = store.get(owner_kind, owner_name, "secret_access_key")
        if not key_id or not secret:
            raise EnvironmentNotReady(
                f"The S3 keys of {owner_kind} '{owner_name}' are not in this machine's keyring.",
                hint=f"Remove and add the {owner_kind} again with --access-key-id and --secret-access-key-file, "
                "or import the recovery kit.",
            )
        session_args["aws_access_key_id"] = key_id
        session_args["aws_secret_access_key"] = secret
    try:
        session = boto3.session.Session(region_name=settings.get("region") or "us-east-1", **session_args)
    except ProfileNotFound:
        raise UsageError(
            f"S3 {owner_kind} '{owner_name}': the AWS profile '{settings.get('profile')}' does not exist.",
            hint="Check ~/.aws/config, or use --access-key-id and --secret-access-key-file.",
        ) from None
    return session.client(
        "s3",
        endpoint_url=settings.get("endpoint_url") or None,
        config=botocore.config.Config(**config_args),
    )


def error_code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def raise_s3_error(error: BaseException, what: str, bucket: str, action: str) -> NoReturn:
    """Turn a botocore failure into a DestinationError naming `what`, the bucket and the fix."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        raise DestinationError(
            f"{what}: no usable AWS credentials were found for bucket '{bucket}'.",
            hint="Set the AWS profile or environment variables, or add it again with --access-key-id and "
            "--secret-access-key-file.",
        ) from None
    if isinstance(error, ConnectionError | HTTPClientError):
        raise DestinationError(
            f"{what}: cannot reach the S3 endpoint for bucket '{bucket}' while trying to {action} "
            f"({type(error).__name__}, after retries).",
            hint="Check the network and the endpoint URL; the snapshot stays queued and is uploaded on the next run.",
        ) from None
    if not isinstance(error, ClientError):
        raise DestinationError(
            f"{what}: S3 request to {action} in bucket '{bucket}' failed ({type(error).__name__}).",
            hint="Try again; if it keeps failing, run `drgui dest test NAME`.",
        ) from None
    code = error_code(error)
    fixes = {
        "NoSuchBucket": (f"bucket '{bucket}' does not exist", "Create it, or fix --bucket / --region."),
        "AccessDenied": (
            f"access denied to {action} in bucket '{bucket}'",
            "Give the key the permission for this action (s3:ListBucket, s3:PutObject, s3:GetObject, "
            "s3:DeleteObject, s3:AbortMultipartUpload) on the bucket and prefix.",
        ),
        "InvalidAccessKeyId": (
            f"the access key id is not known to the endpoint of bucket '{bucket}'",
            "Check the key (and the endpoint URL), then add the destination again with the right key.",
        ),
        "SignatureDoesNotMatch": (
            f"the secret access key does not match the access key id (bucket '{bucket}')",
            "Add the destination again with the right --secret-access-key-file.",
        ),
        "SlowDown": (
            f"the provider keeps throttling requests to bucket '{bucket}' (SlowDown, after retries)",
            "Try again later; the snapshot stays queued and is uploaded on the next run.",
        ),
        "InvalidObjectState": (
            f"an object in bucket '{bucket}' is archived",
            "Restore it from Glacier first.",
        ),
    }
    problem, hint = fixes.get(
        code,
        (
            f"S3 refused to {action} in bucket '{bucket}' ({code or type(error).__name__})",
            "Run `drgui dest test NAME` to see which permission is missing.",
        ),
    )
    raise DestinationError(f"{what}: {problem}.", hint=hint) from None

"""What the S3 source and the S3 destination share: their declared settings and credentials rule, the boto3
client factory and the translation of botocore failures into errors that name the fix (never a key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from drgui.core.engine.kinds import BuildContext, Setting
from drgui.core.errors import DestinationError, EnvironmentNotReady, UsageError
from drgui.core.plan.secrets import SecretStore, remember

CREDENTIALS_KEYRING = "keyring"
CREDENTIALS_PROFILE = "aws-profile"
CREDENTIALS_ENVIRONMENT = "environment"
DEFAULT_MAX_ATTEMPTS = 8


# The settings of an S3 location, shared by the S3 source and the S3 destination (each kind adds its own).
S3_LOCATION_SETTINGS: tuple[Setting, ...] = (
    Setting("bucket", "the bucket name", label="Bucket", required=True, placeholder="acme-backups"),
    Setting("prefix", "a key prefix inside the bucket", label="Prefix", default=""),
    Setting(
        "endpoint_url",
        "the S3-compatible endpoint (empty for AWS)",
        label="Endpoint URL",
        placeholder="https://s3.eu-central-1.amazonaws.com",
    ),
    Setting("region", "the bucket's region", label="Region"),
)
S3_CREDENTIAL_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "access_key_id",
        "the access key id (kept in the keyring; default $AWS_ACCESS_KEY_ID)",
        label="Access key ID",
        secret=True,
        env="AWS_ACCESS_KEY_ID",
    ),
    Setting(
        "secret_access_key",
        "file with the secret access key (kept in the keyring; default $AWS_SECRET_ACCESS_KEY)",
        label="Secret access key",
        secret=True,
        secret_file=True,
        env="AWS_SECRET_ACCESS_KEY",
        prompt="S3 secret access key: ",
        prompt_after="access_key_id",
    ),
    Setting("aws_profile", "use this AWS profile instead of stored keys", label="AWS profile", stored=False),
)
S3_DERIVED = ("credentials", "profile")


def build_s3(
    settings: dict[str, Any], secrets: dict[str, str], ctx: BuildContext
) -> tuple[dict[str, Any], dict[str, str]]:
    """The credentials rule of an S3 location: a key id with a secret key file (kept in the keyring), else
    both AWS_* variables, else an AWS profile; an edit that names none keeps what the plan has."""
    settings["prefix"] = str(settings.get("prefix", "")).strip("/")
    profile = settings.pop("aws_profile", None)
    out = dict(secrets)
    key_id, secret = secrets.get("access_key_id"), secrets.get("secret_access_key")
    fallback_id, fallback_secret = ctx.fallback.get("access_key_id"), ctx.fallback.get("secret_access_key")
    existing = ctx.existing or {}
    if secret:
        if not key_id:
            raise UsageError("--secret-access-key-file needs --access-key-id.")
    elif fallback_id and fallback_secret:
        out.update(access_key_id=key_id or fallback_id, secret_access_key=fallback_secret)
    elif profile:
        out.pop("access_key_id", None)
        settings.update(credentials=CREDENTIALS_PROFILE, profile=profile)
    elif (
        not key_id
        and existing.get("credentials", CREDENTIALS_KEYRING) == CREDENTIALS_KEYRING
        and {
            "access_key_id",
            "secret_access_key",
        }
        <= ctx.existing_secrets
    ):
        settings["credentials"] = CREDENTIALS_KEYRING  # an edit that changes no key keeps the stored ones
    elif not key_id and existing.get("credentials") == CREDENTIALS_ENVIRONMENT:
        settings["credentials"] = CREDENTIALS_ENVIRONMENT
    else:
        raise UsageError(
            "No S3 credentials given.",
            hint="Pass --access-key-id ID --secret-access-key-file FILE, or --aws-profile NAME, "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (they are then stored in the keyring).",
        )
    for value in out.values():
        remember(value)
    if out.get("secret_access_key"):
        settings["credentials"] = CREDENTIALS_KEYRING
    return settings, out


def s3_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What stored settings of an S3 location stand for beyond themselves: the profile as aws_profile."""
    if settings.get("credentials") == CREDENTIALS_PROFILE and settings.get("profile"):
        return {"aws_profile": settings["profile"]}
    return {}


def locate_s3(settings: Mapping[str, Any], plan_id: str) -> tuple[str, str]:
    """The kit's words for where an S3 location keeps a plan's snapshots."""
    prefix = str(settings.get("prefix", "")).strip("/")
    where = f"s3://{settings.get('bucket', '?')}/{prefix + '/' if prefix else ''}{plan_id}/snapshots/"
    extra = []
    if settings.get("endpoint_url"):
        extra.append(f"endpoint {settings['endpoint_url']}")
    if settings.get("region"):
        extra.append(f"region {settings['region']}")
    return where, ", ".join(extra)


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
                hint=f"Store them: `drgui {owner_kind} edit {owner_name} "
                "--access-key-id ID --secret-access-key-file FILE`, "
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
            hint="Set the AWS profile or environment variables, or store keys with `edit NAME --access-key-id "
            "ID --secret-access-key-file FILE`.",
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
            "Check the key (and the endpoint URL), then store the right one with `drgui dest edit NAME "
            "--access-key-id ID --secret-access-key-file FILE`.",
        ),
        "SignatureDoesNotMatch": (
            f"the secret access key does not match the access key id (bucket '{bucket}')",
            "Store the right one with `drgui dest edit NAME --secret-access-key-file FILE --access-key-id ID`.",
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

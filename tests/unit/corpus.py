"""Access to the shared corpus of real CloudTrail data (read in place, never copied into the repo).

The corpus lives beside the repository (``<repo>/../shared/corpus``); tests that need it skip, with the path in
the reason, when it is absent.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import cache
from pathlib import Path
from typing import Any


def _corpus_dir() -> Path:
    """INGESTER_SHARED_DIR if set, else <repo>/../shared, else /work/shared (a scratch clone used by CI lives
    elsewhere, and must still run these tests)."""
    candidates = [Path(os.environ["INGESTER_SHARED_DIR"])] if os.environ.get("INGESTER_SHARED_DIR") else []
    candidates += [Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")]
    return next((c / "corpus" for c in candidates if (c / "corpus").is_dir()), candidates[0] / "corpus")


CORPUS_DIR = _corpus_dir()
RECORDS_PATH = CORPUS_DIR / "aws-docs" / "records.ndjson"
DIGESTS_PATH = CORPUS_DIR / "aws-docs" / "digests.ndjson"
PUBLIC_RECORDS_DIR = CORPUS_DIR / "public" / "records"

# Shapes AWS documents that the corpus lacks. The docs show only the `userIdentity` element, so tests put it in
# INLINE_ENVELOPE.

# The `userIdentity` AWS documents for temporary credentials from an assumed role
# (aws-cloudtrail-user-guide, cloudtrail-event-reference-user-identity.md, "with temporary security credentials").
DOCUMENTED_ASSUMED_ROLE_IDENTITY: dict[str, Any] = {
    "type": "AssumedRole",
    "principalId": "AROAIDPPEZS35WEXAMPLE:AssumedRoleSessionName",
    "arn": "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName",
    "accountId": "123456789012",
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "sessionContext": {
        "attributes": {"mfaAuthenticated": "false", "creationDate": "20131102T010628Z"},
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAIDPPEZS35WEXAMPLE",
            "arn": "arn:aws:iam::123456789012:role/RoleToBeAssumed",
            "accountId": "123456789012",
            "userName": "RoleToBeAssumed",
        },
    },
}
# The `userIdentity` AWS documents for a call an AWS service made (KMS Decrypt by Amazon EBS, in the EBS
# encryption docs); the corpus has service events with only `invokedBy: "AWS Internal"`.
DOCUMENTED_AWS_SERVICE_IDENTITY: dict[str, Any] = {"type": "AWSService", "invokedBy": "ebs.amazonaws.com"}
# The `userIdentity` AWS documents for AssumeRoleWithWebIdentity (same page, "Values for AWS STS APIs with SAML
# and Web Identity Federation") and for an IAM user (same page, first example).
DOCUMENTED_WEB_IDENTITY_USER_IDENTITY: dict[str, Any] = {
    "type": "WebIdentityUser",
    "principalId": "accounts.google.com:application-id.apps.googleusercontent.com:user-id",
    "userName": "user-id",
    "identityProvider": "accounts.google.com",
}
DOCUMENTED_IAM_USER_IDENTITY: dict[str, Any] = {
    "type": "IAMUser",
    "principalId": "AIDAJ45Q7YFFAREXAMPLE",
    "arn": "arn:aws:iam::123456789012:user/Alice",
    "accountId": "123456789012",
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "userName": "Alice",
}
DOCUMENTED_IDENTITIES: dict[str, dict[str, Any]] = {
    "IAMUser": DOCUMENTED_IAM_USER_IDENTITY,
    "AssumedRole": DOCUMENTED_ASSUMED_ROLE_IDENTITY,
    "WebIdentityUser": DOCUMENTED_WEB_IDENTITY_USER_IDENTITY,
    "AWSService": DOCUMENTED_AWS_SERVICE_IDENTITY,
}

# Envelope for records built around a documented `userIdentity`: illustrative values (example account and IDs).
INLINE_ENVELOPE: dict[str, Any] = {
    "eventVersion": "1.08",
    "eventTime": "2013-11-02T01:06:28Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "DescribeInstances",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.0.2.1",
    "userAgent": "aws-cli/2.15.0",
    "requestParameters": {"instancesSet": {}, "filterSet": {}},
    "responseElements": None,
    "requestID": "EXAMPLE-d5a6-4b06-9d5c-EXAMPLE",
    "eventID": "EXAMPLE-1b3c-4f4b-9d0a-EXAMPLE",
    "readOnly": True,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "123456789012",
}


def missing_reason(path: Path) -> str:
    return f"CloudTrail corpus not found at {path} (the shared corpus is read in place, not vendored)"


def _ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_records() -> list[tuple[str, dict[str, Any]]]:
    """``(source_page, record)`` for every documented record; empty when the corpus is absent."""
    return [(entry["source_page"], entry["record"]) for entry in _ndjson(RECORDS_PATH)]


@cache
def public_lines() -> tuple[bytes, ...]:
    """Every record of ``public/records/*.ndjson`` as its source line; empty when the corpus is absent."""
    paths = sorted(PUBLIC_RECORDS_DIR.glob("*.ndjson"))
    return tuple(line for path in paths for line in path.read_bytes().splitlines() if line.strip())


def public_records(event_name: str) -> list[dict[str, Any]]:
    """The public corpus's records with this eventName."""
    needle = f'"{event_name}"'.encode()
    found = [json.loads(line) for line in public_lines() if needle in line]
    return [record for record in found if record.get("eventName") == event_name]


def load_digests() -> list[dict[str, Any]]:
    """The documented digest files (each a JSON object, not a log file); empty when the corpus is absent."""
    return [entry["digest"] for entry in _ndjson(DIGESTS_PATH)]


def record_bytes(record: dict[str, Any]) -> bytes:
    """Pretty-printed on purpose: a re-encoding by the code under test would come out compact and differ."""
    return json.dumps(record, indent=2).encode()


def log_file(records: list[bytes], *, compress: bool = True) -> bytes:
    """A CloudTrail log file holding exactly these record bytes, gzipped like the ones CloudTrail writes."""
    body = b'{"Records": [\n' + b",\n".join(records) + b"\n]}"
    return gzip.compress(body, mtime=0) if compress else body

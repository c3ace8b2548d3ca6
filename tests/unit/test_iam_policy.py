"""Least privilege, checked: every AWS API the code calls is allowed by deploy/iam/, and the policies allow
nothing else without a stated reason.

How the calls are found: the services are the literal names given to the client factories
(``clients.client("cloudtrail", ...)``, ``clients.long_lived("sqs", ...)``, ``session.client("sts", ...)``,
``clients.s3(...)``); the operations are every attribute or string constant in ``ingester/`` that is a botocore
operation name (snake_case) of one of those services. That catches direct calls (``await s3.get_object(...)``),
paginators (``get_paginator("list_accounts")``) and names passed around (``self._call("list_objects_v2", ...)``).
Each operation maps to its IAM actions through :data:`OPERATIONS`; an operation or a service missing from the
table fails the test, so a new call cannot slip past the policies.

``ingester/demo/`` is not scanned: it builds its own moto world with boto3 (CreateBucket, CreateTrail,
PutObject...) and never runs under the collector's role.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ingester"
IAM = REPO / "deploy" / "iam"
COLLECTOR = IAM / "collector-policy.json"
MEMBER = IAM / "member-read-role-policy.json"
TRUST = IAM / "member-read-role-trust.json"
IRSA_TRUST = IAM / "collector-trust-irsa.json"
MSK = IAM / "collector-msk-iam-policy.json"
READER = IAM / "log-archive-reader-policy.json"
READER_TRUST = IAM / "log-archive-reader-trust.json"
NOT_SCANNED = ("demo",)

# botocore operation (snake_case) -> the IAM actions it needs; () = none. Sources: the AWS Service Authorization
# Reference. kms:Decrypt is listed where an SSE-KMS encrypted object or queue makes it necessary.
OPERATIONS: dict[str, tuple[str, ...]] = {
    # sts
    "get_caller_identity": (),  # needs no permission, cannot be denied
    "assume_role": ("sts:AssumeRole",),
    # organizations
    "describe_organization": ("organizations:DescribeOrganization",),
    "list_accounts": ("organizations:ListAccounts",),
    # ec2
    "describe_regions": ("ec2:DescribeRegions",),
    # cloudtrail
    "describe_trails": ("cloudtrail:DescribeTrails",),
    "get_trail_status": ("cloudtrail:GetTrailStatus",),
    "list_public_keys": ("cloudtrail:ListPublicKeys",),
    # s3: ListObjectsV2 is authorized as s3:ListBucket, HeadObject as s3:GetObject
    "list_objects_v2": ("s3:ListBucket",),
    "get_object": ("s3:GetObject", "kms:Decrypt"),
    "head_object": ("s3:GetObject", "kms:Decrypt"),
    # sqs: the batch forms are authorized as the single ones
    "receive_message": ("sqs:ReceiveMessage", "kms:Decrypt"),
    "delete_message": ("sqs:DeleteMessage",),
    "delete_message_batch": ("sqs:DeleteMessage",),
    "change_message_visibility": ("sqs:ChangeMessageVisibility",),
    "change_message_visibility_batch": ("sqs:ChangeMessageVisibility",),
    "get_queue_attributes": ("sqs:GetQueueAttributes",),
    "get_queue_url": ("sqs:GetQueueUrl",),
}
SERVICES = frozenset({"sts", "organizations", "ec2", "cloudtrail", "s3", "sqs"})
# Calls made with a member account's role (trails that member accounts own): the rest runs with the collector's.
MEMBER_SERVICES = frozenset({"cloudtrail", "s3"})
# Granted although no scanned call needs it, each with its reason. Anything else granted and unused fails.
UNUSED_GRANTS = {
    "sqs:GetQueueAttributes": "notification mode, as specified for the queue (issue 6); no call reads it yet",
}
# What a bucket's reader role (``[[buckets]]``, the log-archive account's) and the bucket discovery mode run: the S3
# reads and nothing else (no Organizations, no CloudTrail, no AssumeRole onwards).
READER_SERVICES = frozenset({"s3"})
# Actions without resource-level permissions: the only ones that may have Resource "*".
RESOURCE_STAR = frozenset(
    {
        "organizations:DescribeOrganization",
        "organizations:ListAccounts",
        "ec2:DescribeRegions",
        "cloudtrail:DescribeTrails",
        "cloudtrail:ListPublicKeys",
    }
)
CLIENT_FACTORIES = frozenset({"client", "_client", "long_lived", "resource"})


def _python_files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*.py")):
        if not set(path.relative_to(root).parts) & set(NOT_SCANNED):
            yield path


def services_used(trees: Iterable[ast.AST], known: frozenset[str]) -> set[str]:
    """Literal service names handed to a client factory, and ``clients.s3(...)``."""
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "s3" and isinstance(func, ast.Attribute):
                found.add("s3")
            elif name in CLIENT_FACTORIES:
                found |= {a.value for a in node.args if isinstance(a, ast.Constant) and a.value in known}
    return found


def operations_called(trees: Mapping[str, ast.AST], operations: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """operation -> where it appears, for every attribute or whole string constant naming an operation."""
    found: dict[str, set[str]] = {}
    for where, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            else:
                continue
            if name in operations:
                found.setdefault(name, set()).add(f"{where}:{node.lineno}")
    return found


def scan(sources: dict[str, str]) -> tuple[set[str], dict[str, set[str]]]:
    """(services, operation -> locations) for the given {path: source}."""
    session = botocore.session.get_session()
    trees = {where: ast.parse(text, filename=where) for where, text in sources.items()}
    services = services_used(trees.values(), frozenset(session.get_available_services()))
    operations: dict[str, set[str]] = {}
    for service in services:
        for operation in session.get_service_model(service).operation_names:
            operations.setdefault(xform_name(operation), set()).add(service)
    return services, operations_called(trees, operations)


def _package_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in _python_files(PACKAGE)}


def load(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["Version"] == "2012-10-17", path.name
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allows(statements: list[dict[str, Any]], action: str) -> bool:
    """Whether an Allow statement names the action (IAM action names are case-insensitive; * and ? match)."""
    matched = [
        s["Effect"]
        for s in statements
        if any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _as_list(s.get("Action", [])))
    ]
    return "Allow" in matched and "Deny" not in matched


def granted(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])}


def needed(operations: Iterable[str]) -> set[str]:
    return {action for operation in operations for action in OPERATIONS[operation]}


@pytest.fixture(scope="module")
def scanned() -> tuple[set[str], dict[str, set[str]]]:
    return scan(_package_sources())


def test_the_scan_sees_the_known_calls(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    """Guards the scanner itself: if it found nothing, every other test here would pass vacuously."""
    services, calls = scanned
    assert {"sts", "organizations", "ec2", "cloudtrail", "s3"} <= services
    assert {"assume_role", "list_accounts", "describe_trails", "list_objects_v2", "get_object"} <= set(calls)


def test_every_service_and_operation_is_in_the_table(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    services, calls = scanned
    assert services <= SERVICES, (
        f"new AWS service(s) {sorted(services - SERVICES)}: add them to SERVICES, their operations to OPERATIONS "
        "and the actions to deploy/iam/"
    )
    unmapped = {operation: sorted(where) for operation, where in calls.items() if operation not in OPERATIONS}
    assert not unmapped, f"AWS operations without an IAM mapping (add them to OPERATIONS and deploy/iam/): {unmapped}"


def test_the_policies_allow_every_call(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    _, calls = scanned
    union = load(COLLECTOR) + load(MEMBER) + load(READER)
    missing = {
        action: sorted(op for op in calls if action in OPERATIONS.get(op, ()))
        for action in needed(op for op in calls if op in OPERATIONS)
        if not allows(union, action)
    }
    assert not missing, f"actions the code needs that deploy/iam/ does not allow: {missing}"


def test_each_role_allows_what_runs_under_it(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    """The collector role runs every call (trails of its own account included); a member role runs the
    CloudTrail and S3 reads of the trails its account owns."""
    _, calls = scanned
    session = botocore.session.get_session()
    member_ops = {
        xform_name(op) for service in MEMBER_SERVICES for op in session.get_service_model(service).operation_names
    }
    collector, member = load(COLLECTOR), load(MEMBER)
    mapped = [op for op in calls if op in OPERATIONS]
    missing_collector = sorted(a for a in needed(mapped) if not allows(collector, a))
    missing_member = sorted(a for a in needed(op for op in mapped if op in member_ops) if not allows(member, a))
    assert not missing_collector, f"{COLLECTOR.name} lacks {missing_collector}"
    assert not missing_member, f"{MEMBER.name} lacks {missing_member}"


def test_nothing_is_granted_without_a_reason(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    _, calls = scanned
    used = needed(op for op in calls if op in OPERATIONS)
    extra = (granted(load(COLLECTOR)) | granted(load(MEMBER)) | granted(load(READER))) - used - set(UNUSED_GRANTS)
    assert not extra, f"granted but never called (remove them, or say why in UNUSED_GRANTS): {sorted(extra)}"


@pytest.mark.parametrize("path", [COLLECTOR, MEMBER, MSK, READER], ids=lambda p: p.name)
def test_policies_are_narrow(path: Path) -> None:
    for statement in load(path):
        sid = statement.get("Sid", "?")
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        actions = _as_list(statement["Action"])
        assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", a) for a in actions), f"{sid}: wildcard action {actions}"
        resources = _as_list(statement["Resource"])
        if "*" in resources:
            assert set(actions) <= RESOURCE_STAR, f"{sid}: Resource * for {sorted(set(actions) - RESOURCE_STAR)}"
        # Placeholders, never a real account id in the repository.
        assert not any(re.search(r"\d{12}", r) for r in resources), f"{sid}: account id in {resources}"


@pytest.mark.parametrize("path", [TRUST, READER_TRUST], ids=lambda p: p.name)
def test_the_member_and_reader_roles_trust_only_the_collector_role(path: Path) -> None:
    (statement,) = load(path)
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    principal = statement["Principal"]["AWS"]
    assert isinstance(principal, str) and ":role/" in principal and "*" not in principal
    assert "sts:ExternalId" in statement["Condition"]["StringEquals"]


def test_the_collector_role_trusts_only_its_service_account() -> None:
    (statement,) = load(IRSA_TRUST)
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert {key.rsplit(":", 1)[1] for key in condition} == {"aud", "sub"}
    assert [v for k, v in condition.items() if k.endswith(":sub")] == [
        "system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT"
    ]


def test_the_collector_may_assume_the_role_the_example_config_names() -> None:
    example = tomllib.loads((REPO / "deploy" / "config.example.toml").read_text(encoding="utf-8"))
    role = example["discovery"]["assume_role_name"]
    (statement,) = [s for s in load(COLLECTOR) if s.get("Sid") == "AssumeMemberReadRole"]
    assert _as_list(statement["Resource"]) == [f"arn:aws:iam::*:role/{role}"]


def test_the_collector_may_assume_the_log_archive_reader_role_and_no_other() -> None:
    """Two AssumeRole grants: the member read role (any account, one name) and the reader role in the log-archive
    account (one ARN, the one a [[buckets]] entry names)."""
    assumed = [s for s in load(COLLECTOR) if "sts:AssumeRole" in _as_list(s["Action"])]
    resources = sorted(r for s in assumed for r in _as_list(s["Resource"]))
    assert resources == [
        "arn:aws:iam::*:role/ingester-read",
        "arn:aws:iam::LOG_ARCHIVE_ACCOUNT_ID:role/ingester-log-archive-read",
    ]


def test_the_log_archive_reader_role_grants_exactly_the_s3_reads(scanned: tuple[set[str], dict[str, set[str]]]) -> None:
    """The minimal policy of a bucket-only reader (README "Landing zones"): every S3 call the code makes, SSE-KMS
    decryption included, and nothing else, so a [[buckets]] role or a bucket-mode collector needs no more."""
    _, calls = scanned
    session = botocore.session.get_session()
    s3_ops = {xform_name(op) for op in session.get_service_model("s3").operation_names}
    reads = needed(op for op in calls if op in OPERATIONS and op in s3_ops)
    assert reads == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    assert granted(load(READER)) == reads


def test_bucket_mode_discovery_calls_only_s3() -> None:
    """discovery/layout.py (and the S3 source it lists with) names no other service than S3: the bucket mode
    needs no Organizations or CloudTrail permission."""
    layout = {
        str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
        for p in (PACKAGE / "discovery" / "layout.py", PACKAGE / "sources" / "s3.py")
    }
    services, calls = scan(layout)
    assert services == READER_SERVICES
    assert set(calls) <= {"list_objects_v2", "get_object", "head_object"}


def test_a_new_call_or_a_missing_grant_is_caught() -> None:
    """The checks can fail: a call to an unmapped operation is reported, and so is a policy lacking an action."""
    source = (
        "async def f(clients):\n"
        "    async with clients.client('kms', '1', 'us-east-1') as kms:\n"
        "        await kms.decrypt(CiphertextBlob=b'')\n"
        "    s3 = await clients.s3('1')\n"
        "    await s3.get_object(Bucket='b', Key='k')\n"
    )
    services, calls = scan({"example.py": source})
    assert services == {"kms", "s3"}
    assert {"decrypt", "get_object"} <= set(calls)
    assert "decrypt" not in OPERATIONS
    without_get = [{**s, "Action": [a for a in _as_list(s["Action"]) if a != "s3:GetObject"]} for s in load(COLLECTOR)]
    assert allows(load(COLLECTOR), "s3:GetObject")
    assert not allows(without_get, "s3:GetObject")

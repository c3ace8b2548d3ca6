"""Deterministic generator of realistic CloudTrail log files.

Why it exists: ``ingester demo``, the integration tests and the benchmarks all need CloudTrail input without
an AWS account. It must be *reproducible* (same seed, same bytes: failures replay, benchmark runs compare) and
*realistic* enough to exercise the decoder as production does: every documented userIdentity shape, fields
that come and go with eventVersion, requestParameters/responseElements that are objects, null or a string,
~5% errors, data and management events, ~1.5 KB records with a rare 10-30 KB one, and keys laid out as
CloudTrail writes them. All names, IDs and IPs are synthetic.

Most events are data: templates in ``_SPEC`` whose ``"{field}"`` strings are filled per record from
``_FIELDS``; only userIdentity, AssumeRole and the large records are built by code.
"""

from __future__ import annotations

import base64
import bisect
import gc
import gzip
import random
import string
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from typing import TypeVar

import orjson

Record = dict[str, object]
_T = TypeVar("_T")
# requestParameters, responseElements, resources, additionalEventData (serviceEventDetails for service events)
_Parts = tuple[object, object, object, object]

# fmt: off
_ALNUM = string.ascii_letters + string.digits
_B32 = bytes((string.ascii_uppercase + "234567").encode()[b & 31] for b in range(256))  # uniform: 256 % 32 == 0
_HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_APPS = ("orders", "payments", "checkout", "inventory", "search", "billing", "catalog", "reports", "ingest")
_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "trent")
_EMAILS = tuple(f"{p}@example.com" for p in _PEOPLE)
_BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0")
_CONSOLE = ("AWS Internal", "console.amazonaws.com", *_BROWSER)
_SDK = ("Boto3/1.34.162 md/Botocore#1.34.162 ua/2.0 os/linux#5.10.225-213.878.amzn2.x86_64 md/arch#x86_64 "
        "lang/python#3.12.5 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.162",
        "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.58.2",
        "aws-sdk-java/2.26.25 Linux/5.10.223-211.872.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.12+7-LTS "
        "Java/17.0.12 vendor/Amazon.com_Inc. md/internal exec-env/AWS_ECS_FARGATE io/sync http/Apache",
        "aws-sdk-js/3.637.0 ua/2.0 os/linux#5.10.224-212.876.amzn2.x86_64 lang/js md/nodejs#20.17.0",
        "aws-sdk-go/1.44.327 (go1.20.7; linux; amd64)", "aws-sdk-go/1.50.8 (go1.21.6; linux; arm64)",
        "Boto3/1.26.90 Python/3.9.16 Linux/5.10.167-147.601.amzn2.x86_64 Botocore/1.29.90")
_CLI = ("aws-cli/2.17.42 md/awscrt#0.21.2 ua/2.0 os/macos#23.6.0 md/arch#arm64 lang/python#3.11.9 "
        "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#s3.cp",)
_IAC = ("APN/1.0 HashiCorp/1.0 Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.65.0 "
        "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.4 ua/2.0 os/linux",)
_UAS: dict[str, tuple[str, ...]] = {  # by the caller's session style
    "ec2": (*_SDK, "aws-sdk-go/1.55.5 (go1.22.5; linux; amd64) amazon-ssm-agent/3.3.859.0"),
    "lambda": ("Boto3/1.34.145 md/Botocore#1.34.145 ua/2.0 os/linux#5.10.224-235.880.amzn2.x86_64 "
               "lang/python#3.12.5 exec-env/AWS_Lambda_python3.12 Botocore/1.34.145",),
    "sso": (*_CONSOLE, *_CONSOLE, *_CLI, _SDK[0]), "ci": (*_IAC, *_CLI), "user": (*_CLI, *_SDK, *_IAC),
}
_TLS = (("TLSv1.3", "TLS_AES_128_GCM_SHA256"), ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))
_VERSIONS, _VERSION_CUM = ("1.05", "1.08", "1.09", "1.10", "1.11"), tuple(accumulate((10, 32, 29, 17, 12)))
_VIA_DEFAULT = ("cloudformation.amazonaws.com", "config.amazonaws.com", "autoscaling.amazonaws.com",
                "elasticloadbalancing.amazonaws.com", "AWS Internal")
_VIA = {  # services that call an event source on someone's behalf (invokedBy, AWSService)
    "sts": ("lambda.amazonaws.com", "ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "eks.amazonaws.com",
            "states.amazonaws.com", "glue.amazonaws.com"),
    "kms": ("s3.amazonaws.com", "secretsmanager.amazonaws.com", "dynamodb.amazonaws.com", "sqs.amazonaws.com"),
    "s3": ("cloudtrail.amazonaws.com", "config.amazonaws.com", "delivery.logs.amazonaws.com"),
    "lambda": ("events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com", "apigateway.amazonaws.com"),
}
_HOSTS = {"iam": "iam.amazonaws.com", "organizations": "organizations.us-east-1.amazonaws.com",
          "route53": "route53.amazonaws.com"}
_VPCE_SOURCES = frozenset(("s3", "kms", "sts", "dynamodb", "ssm", "secretsmanager", "ecr", "logs", "sqs"))
_WHO: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {  # identity-type weights per kind of event
    name: (kinds, tuple(accumulate(weights))) for name, kinds, weights in (
        ("api", ("AssumedRole", "IAMUser", "AWSAccount", "FederatedUser", "Root", "AWSService"),
         (70, 7, 3, 1.5, 1, 17.5)),
        ("data", ("AssumedRole", "AWSAccount", "IAMUser", "AWSService"), (74, 6, 4, 16)),
        ("sts", ("AWSService", "AssumedRole", "IAMUser", "AWSAccount", "FederatedUser"), (55, 31, 6, 6, 2)),
        ("lambda", ("AWSService", "AssumedRole"), (45, 55)),
        ("signin", ("IAMUser", "AssumedRole", "Root", "Unknown"), (35, 35, 12, 18)),
        ("idc", ("IdentityCenterUser", "Unknown"), (65, 35)),
        ("internal", ("Internal",), (1,)), ("oidc", ("WebIdentityUser",), (1,)), ("saml", ("SAMLUser",), (1,)))
}
_DENIED = "User: {arn} is not authorized to perform: {svc}:{name} because no identity-based policy allows it"
_ERRORS: dict[str, tuple[tuple[str, str], ...]] = {
    "ec2": (("Client.UnauthorizedOperation", "You are not authorized to perform this operation. " + _DENIED),
            ("Client.RequestLimitExceeded", "Request limit exceeded."),
            ("Client.InvalidInstanceID.NotFound", "The instance ID 'i-0c1a2b3c4d5e6f708' does not exist")),
    "s3": (("AccessDenied", "Access Denied"), ("NoSuchKey", "The specified key does not exist."),
           ("SlowDown", "Please reduce your request rate.")),
    "iam": (("AccessDenied", _DENIED), ("NoSuchEntity", "The user with name build-bot cannot be found."),
            ("Throttling", "Rate exceeded")),
    "kms": (("AccessDeniedException", _DENIED), ("InvalidCiphertextException", ""), ("ThrottlingException",
             "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.")),
    "dynamodb": (("ConditionalCheckFailedException", "The conditional request failed"),
                 ("ProvisionedThroughputExceededException", "The level of configured provisioned throughput "
                  "for the table was exceeded. Consider increasing your provisioning level.")),
}
_ERRORS_DEFAULT = (("AccessDenied", _DENIED), ("ThrottlingException", "Rate exceeded"),
                   ("ResourceNotFoundException", "Resource not found"),
                   ("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy "
                    "constraint: Member must not be null"))
# fmt: on


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _aid(rng: random.Random, prefix: str, n: int = 16) -> str:
    """An IAM-style unique ID or access key ID: prefix + n characters of [A-Z2-7]."""
    return prefix + rng.randbytes(n).translate(_B32).decode()


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _amz_date(ts: int) -> str:
    tm = time.gmtime(ts)
    clock = f"{tm.tm_hour % 12 or 12}:{tm.tm_min:02d}:{tm.tm_sec:02d} {'AM' if tm.tm_hour < 12 else 'PM'}"
    return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday}, {tm.tm_year}, {clock}"


@dataclass(frozen=True, slots=True)
class _Pool:
    """One account's stable cast: the same roles, buckets and keys show up file after file."""

    roles: tuple[tuple[str, str, str, str, str], ...]  # name, role id, session style, path, fixed session
    users: tuple[tuple[str, str, str], ...]  # name, user id, long-term access key
    apps: tuple[str, ...]
    instances: tuple[str, ...]
    keys: tuple[str, ...]
    ips: tuple[str, ...]
    vpces: tuple[str, ...]
    partners: tuple[str, ...]
    store: str


@lru_cache(maxsize=256)
def _pool(acct: str) -> _Pool:
    rng = random.Random(f"pool|{acct}")
    sso = "/aws-reserved/sso.amazonaws.com/"
    roles = [(f"AWSReservedSSO_{p}_{_hex(rng, 16)}", "sso", sso, "") for p in ("AdministratorAccess", "DataEngineer")]
    apps = tuple(rng.sample(_APPS, 6))
    for app in apps:
        env = rng.choice(("prod", "prod", "staging", "dev"))
        roles += [(f"{app}-{env}-{style}-role", style, "/", "") for style in ("ec2", "ecs", "lambda", "app")]
    svc = "/aws-service-role/{}.amazonaws.com/".format
    roles += [
        ("GitHubActionsDeployRole", "ci", "/", "GitHubActions"),
        ("TerraformExecution", "ci", "/", ""),
        ("DatadogIntegrationRole", "app", "/", "DatadogAWSIntegration"),
        ("OrganizationAccountAccessRole", "sso", "/", ""),
        ("AWSServiceRoleForConfig", "svc", svc("config"), "AWSConfig-Describe"),
        ("AWSServiceRoleForAutoScaling", "svc", svc("autoscaling"), "AutoScaling"),
    ]
    nets = [f"{rng.choice((3, 18, 34, 44, 52, 54))}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(10)]
    ips = [f"{net}.{rng.randrange(1, 255)}" for net in (*nets, "203.0.113", "198.51.100", "192.0.2")]
    ips.append(f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}")
    return _Pool(
        roles=tuple((n, _aid(rng, "AROA", 17), s, p, f) for n, s, p, f in roles),
        users=tuple((u, _aid(rng, "AIDA", 17), _aid(rng, "AKIA")) for u in ("jenkins", "ci-deployer", *_PEOPLE[:4])),
        apps=apps,
        instances=tuple(f"i-0{_hex(rng, 16)}" for _ in range(24)),
        keys=tuple(_uuid(rng) for _ in range(6)),
        ips=tuple(ips),
        vpces=tuple(f"vpce-0{_hex(rng, 16)}" for _ in range(3)),
        partners=tuple(str(rng.randrange(10**11, 10**12)) for _ in range(4)),
        store=f"d-{_hex(rng, 10)}",
    )


class _Ctx:
    """State of one generate_records call, and the caller-dependent facts of the record being built."""

    __slots__ = ("acct", "arn", "console", "day", "error", "ip", "iso_cache", "name", "pool", "rand", "region",
                 "rng", "t", "tls", "ua")  # fmt: skip

    def __init__(self, rng: random.Random, acct: str, region: str, day: str) -> None:
        self.rng, self.rand, self.acct, self.region, self.day = rng, rng.random, acct, region, day
        self.pool = _pool(acct)
        self.t, self.name, self.arn, self.ua, self.ip, self.tls, self.console = 0, "", "", "", "", True, False
        self.error: tuple[str | None, str] | None = None  # (errorCode or None, errorMessage)
        self.iso_cache: dict[int, str] = {}

    def pick(self, seq: Sequence[_T]) -> _T:
        """rng.choice without its rejection loop: 3x faster, and this is the hot path."""
        return seq[int(self.rand() * len(seq))]

    def below(self, n: int) -> int:
        return int(self.rand() * n)

    def iso(self, ts: int) -> str:
        s = self.iso_cache.get(ts)
        if s is None:
            s = self.iso_cache[ts] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        return s

    def arn_of(self, svc: str, res: str) -> str:
        return f"arn:aws:{svc}:{self.region}:{self.acct}:{res}"

    def ip10(self) -> str:
        return f"10.{self.below(256)}.{self.below(256)}.{self.below(254) + 1}"

    def session(self, style: str) -> str:
        if style in ("ec2", "lambda"):
            return self.pick(self.pool.instances) if style == "ec2" else f"{self.pick(self.pool.apps)}-handler"
        if style == "ecs":
            return _hex(self.rng, 32)
        return self.pick(_EMAILS) if style == "sso" else f"botocore-session-{self.t - self.below(86400)}"


# The "{field}"s of _SPEC's templates. Within one record a field keeps its value (the bucket of
# requestParameters is the bucket of resources), except the _FRESH ones; "{=field}" inserts a non-string value.
_FIELDS: dict[str, Callable[[_Ctx], object]] = {
    "acct": lambda c: c.acct,
    "region": lambda c: c.region,
    "day": lambda c: c.day,
    "iso": lambda c: c.iso(c.t),
    "hour_ago": lambda c: c.iso(c.t - 3600),
    "date": lambda c: _amz_date(c.t),
    "app": lambda c: c.pick(c.pool.apps),
    "fn": lambda c: f"{c.pick(c.pool.apps)}-{c.pick(('handler', 'worker', 'authorizer'))}",
    "bucket": lambda c: f"{c.pick(c.pool.apps[:4])}-{c.pick(('data', 'artifacts'))}-{c.acct}",
    "objkey": lambda c: f"{c.pick(('raw', 'exports', 'uploads'))}/{c.day}/{_hex(c.rng, 12)}.{c.pick(('gz', 'csv'))}",
    "table": lambda c: f"{c.pick(c.pool.apps)}-{c.pick(('items', 'sessions'))}",
    "queue": lambda c: f"{c.pick(c.pool.apps)}-{c.pick(('events', 'dlq'))}",
    "inst": lambda c: c.pick(c.pool.instances),
    "key": lambda c: c.pick(c.pool.keys),
    "partner": lambda c: c.pick(c.pool.partners),
    "user": lambda c: f"{c.pick(_PEOPLE)}.{c.pick(('ops', 'dev', 'svc'))}",
    "person": lambda c: c.pick(_PEOPLE),
    "n": lambda c: c.below(99) + 1,
    "size": lambda c: int(c.rng.lognormvariate(9, 2)),
    "ms": lambda c: (c.t + 1) * 1000,
    "id2": lambda c: base64.b64encode(c.rng.randbytes(57)).decode(),
    "aid": lambda c: _aid(c.rng, ""),
    "hex8": lambda c: _hex(c.rng, 8),
    "hex16": lambda c: _hex(c.rng, 16),
    "hex32": lambda c: _hex(c.rng, 32),
    "uuid": lambda c: _uuid(c.rng),
}
_FRESH = frozenset(("objkey", "aid", "hex8", "hex16", "hex32", "uuid"))


class _Fields(dict[str, object]):
    """format_map source for one record: fields are computed on first use."""

    def __init__(self, c: _Ctx) -> None:
        super().__init__()
        self.c = c

    def __missing__(self, key: str) -> object:
        value = _FIELDS[key](self.c)
        if key not in _FRESH:
            self[key] = value
        return value


_Filler = Callable[[_Fields], object]


def _has_field(v: object) -> bool:
    return isinstance(v, str) and "{" in v


def _filler(template: object) -> _Filler:
    """Compile a template into a function that makes a fresh copy of it with its fields filled in."""
    if isinstance(template, str) and "{" in template:
        if template.startswith("{="):
            name = template[2:-1]
            return lambda fields: fields[name]
        return template.format_map
    if isinstance(template, list):
        items = tuple(_filler(x) for x in template)
        return lambda fields: [fill(fields) for fill in items]
    if not isinstance(template, dict):
        return lambda fields: template
    base = dict(template)  # constant values copied as is; the others overwritten in place, keeping key order
    dynamic = tuple((k, _filler(x)) for k, x in template.items() if isinstance(x, dict | list) or _has_field(x))

    def fill_dict(fields: _Fields) -> object:
        out = base.copy()
        for key, fill in dynamic:
            out[key] = fill(fields)
        return out

    return fill_dict


def _sts(c: _Ctx) -> _Parts:
    role, rid, style, path, session = c.pick(c.pool.roles)
    session, role_arn = session or c.session(style), f"arn:aws:iam::{c.acct}:role{path}{role}"
    token = "IQoJb3JpZ2luX2Vj" + base64.b64encode(c.rng.randbytes(260 + c.below(140))).decode()
    creds = {"accessKeyId": _aid(c.rng, "ASIA"), "sessionToken": token, "expiration": _amz_date(c.t + 3600)}
    user = {"assumedRoleId": f"{rid}:{session}", "arn": f"arn:aws:sts::{c.acct}:assumed-role/{role}/{session}"}
    rp: Record = {"roleArn": role_arn, "roleSessionName": session}
    aed: Record | None = None
    if c.name == "AssumeRole":
        rp["durationSeconds"] = 3600
    else:
        aed = {"identityProviderConnectionVerificationMethod": "IdPThumbprint"}
        if c.name == "AssumeRoleWithSAML":
            rp["principalArn"] = f"arn:aws:iam::{c.acct}:saml-provider/Okta"
    res = [{"accountId": c.acct, "type": "AWS::IAM::Role", "ARN": role_arn}]
    return rp, {"credentials": creds, "assumedRoleUser": user}, res, aed


def _big(c: _Ctx) -> _Parts:
    """The rare 10-30 KB records: a task definition, a CloudFormation template, an inline policy."""
    rng, target, name = c.rng, 10_000 + int(20_000 * c.rand() ** 2), f"{c.pick(_APPS)}-{_hex(c.rng, 6)}"
    if c.name == "RegisterTaskDefinition":  # the response echoes the definition: ~130 bytes per variable
        env = [{"name": f"{c.pick(_APPS).upper()}_SETTING_{i}", "value": _hex(rng, 24)} for i in range(target // 130)]
        image = f"{c.acct}.dkr.ecr.{c.region}.amazonaws.com/app:{_hex(rng, 7)}"
        ctr = [{"name": "app", "image": image, "cpu": 1024, "memory": 2048, "essential": True, "environment": env}]
        arn = c.arn_of("ecs", f"task-definition/{name}:1")
        td = {"taskDefinitionArn": arn, "containerDefinitions": ctr, "status": "ACTIVE", "revision": 1}
        return (
            {"family": name, "networkMode": "awsvpc", "containerDefinitions": ctr},
            {"taskDefinition": td},
            None,
            None,
        )
    if c.name == "CreateStack":
        props = {"VisibilityTimeout": 30, "KmsMasterKeyId": "alias/aws/sqs"}
        queues = {f"Queue{i}": {"Type": "AWS::SQS::Queue", "Properties": props} for i in range(target // 150)}
        body = orjson.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": queues}, option=orjson.OPT_INDENT_2)
        rp = {"stackName": name, "templateBody": body.decode(), "capabilities": ["CAPABILITY_NAMED_IAM"]}
        return rp, {"stackId": c.arn_of("cloudformation", f"stack/{name}/{_uuid(rng)}")}, None, None
    buckets = [f"arn:aws:s3:::{app}-data-{c.acct}/{_hex(rng, 8)}/*" for app in c.pool.apps]
    stmts = [
        {"Sid": f"Allow{i}", "Effect": "Allow", "Action": c.pick(_ACTIONS), "Resource": c.pick(buckets)}
        for i in range(target // 200)
    ]
    doc = orjson.dumps({"Version": "2012-10-17", "Statement": stmts}, option=orjson.OPT_INDENT_2).decode()
    return {"roleName": f"{name}-role", "policyName": f"{name}-inline", "policyDocument": doc}, None, None, None


# fmt: off
_ACTIONS = (["s3:GetObject", "s3:PutObject"], ["kms:Decrypt", "kms:GenerateDataKey"], ["sqs:SendMessage"],
            ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"], ["logs:PutLogEvents", "logs:CreateLogStream"])
_KEY_ARN = "arn:aws:kms:{region}:{acct}:key/{key}"
_FN_ARN = "arn:aws:lambda:{region}:{acct}:function:{fn}"
_FN_RES: list[Record] = [{"accountId": "{acct}", "type": "AWS::Lambda::Function", "ARN": _FN_ARN}]
_SECRET = "arn:aws:secretsmanager:{region}:{acct}:secret:prod/{app}"
_TRAIL = "arn:aws:cloudtrail:{region}:{acct}:trail/org-trail"
_S3_RP = {"bucketName": "{bucket}", "Host": "{bucket}.s3.{region}.amazonaws.com", "key": "{objkey}"}
_S3_RES = [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::{bucket}/{objkey}"},
           {"accountId": "{acct}", "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::{bucket}"}]
_S3_GET = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0,
           "SSEApplied": "Default_SSE_S3", "AuthenticationMethod": "AuthHeader", "x-amz-id-2": "{id2}",
           "bytesTransferredOut": "{=size}"}
_S3_PUT = {**_S3_GET, "bytesTransferredIn": "{=size}", "SSEApplied": "SSE_KMS", "bytesTransferredOut": 0}
_S3_SSE = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": _KEY_ARN,
           "x-amz-server-side-encryption-bucket-key-enabled": "true"}
_KMS_RES: list[Record] = [{"accountId": "{acct}", "type": "AWS::KMS::Key", "ARN": _KEY_ARN}]
_DDB_RES: list[Record] = [{"accountId": "{acct}", "type": "AWS::DynamoDB::Table",
                            "ARN": "arn:aws:dynamodb:{region}:{acct}:table/{table}"}]
_DDB_KEY = {"pk": _HIDDEN, "sk": _HIDDEN}
_SQS_URL = "https://sqs.{region}.amazonaws.com/{acct}/{queue}"
_SQS_RES: list[Record] = [{"accountId": "{acct}", "type": "AWS::SQS::Queue",
                            "ARN": "arn:aws:sqs:{region}:{acct}:{queue}"}]
_EC2_IDS = {"instancesSet": {"items": [{"instanceId": "{inst}"}]}, "filterSet": {}, "includeAllInstances": False}
_EC2_VPC = {"maxResults": 1000,
            "filterSet": {"items": [{"name": "vpc-id", "valueSet": {"items": [{"value": "vpc-0{hex16}"}]}}]}}
_TAGS = {"items": [{"key": "Name", "value": "{app}-worker"}, {"key": "owner", "value": "{person}"}]}
_RUN_RP = {"instancesSet": {"items": [{"imageId": "ami-0{hex16}", "minCount": 1, "maxCount": 1}]},
           "instanceType": "m7g.large", "blockDeviceMapping": {}, "monitoring": {"enabled": False},
           "disableApiTermination": False, "clientToken": "{uuid}",
           "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": _TAGS}]}}
_RUN_RE = {"requestId": "{uuid}", "reservationId": "r-0{hex16}", "ownerId": "{acct}", "instancesSet": {"items": [{
    "instanceId": "i-0{hex16}", "imageId": "ami-0{hex16}", "instanceState": {"code": 0, "name": "pending"},
    "privateDnsName": "ip-10-0-{n}-9.ec2.internal", "amiLaunchIndex": 0, "productCodes": {},
    "instanceType": "m7g.large", "launchTime": "{=ms}", "placement": {"availabilityZone": "{region}a",
    "tenancy": "default"}, "privateIpAddress": "10.0.{n}.9", "subnetId": "subnet-0{hex16}", "vpcId": "vpc-0{hex16}",
    "architecture": "arm64", "stateReason": {"code": "pending", "message": "pending"}, "rootDeviceType": "ebs",
    "tagSet": _TAGS, "groupSet": {"items": [{"groupId": "sg-0{hex16}", "groupName": "app-default"}]},
    "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2}}]}}
_TERMINATED = {"requestId": "{uuid}", "instancesSet": {"items": [{"instanceId": "{inst}", "currentState": {
    "code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"}}]}}
_LOGIN = {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
          "MobileVersion": "No", "MFAUsed": "No"}
_LOGIN_MFA = {**_LOGIN, "MFAUsed": "Yes", "MFAIdentifier": "arn:aws:iam::{acct}:mfa/{person}-yubikey"}
_CREATED = {"path": "/", "userName": "{user}", "userId": "AIDA{aid}Q", "arn": "arn:aws:iam::{acct}:user/{user}",
            "createDate": "{date}"}
_NEW_KEY = {"userName": "{user}", "accessKeyId": "AKIA{aid}", "status": "Active", "createDate": "{date}"}


def _kms(context: Record, **more: object) -> tuple[Record, None, list[Record], None]:
    return {"encryptionContext": context, "encryptionAlgorithm": "SYMMETRIC_DEFAULT", **more}, None, _KMS_RES, None


# (eventSource prefix, eventName, weight, flags, parts). Flags: "w" not readOnly, "d" data event, "fail" a failed
# sign-in, and a _WHO profile (default "api", "data" for data events). Parts: a builder, or the templates of
# (requestParameters, responseElements, resources, additionalEventData), or of requestParameters alone.
_SPEC: tuple[tuple[str, str, float, str, Callable[[_Ctx], _Parts] | tuple[object, ...] | Record | str | None], ...] = (
    ("sts", "AssumeRole", 85, "sts", _sts), ("sts", "GetCallerIdentity", 25, "", None),
    ("sts", "AssumeRoleWithWebIdentity", 10, "oidc", _sts), ("sts", "AssumeRoleWithSAML", 2, "saml", _sts),
    ("kms", "Decrypt", 40, "", _kms({"aws:s3:arn": "arn:aws:s3:::{bucket}/{objkey}"})),
    ("kms", "Decrypt", 35, "", _kms({"SecretARN": _SECRET, "SecretVersionId": "{uuid}"})),
    ("kms", "Decrypt", 25, "", _kms({"aws:lambda:FunctionArn": _FN_ARN})),
    ("kms", "GenerateDataKey", 45, "", _kms({"aws:s3:arn": "arn:aws:s3:::{bucket}"}, keyId=_KEY_ARN,
                                            keySpec="AES_256")),
    ("kms", "Encrypt", 10, "", _kms({"aws:dynamodb:tableName": "{table}"}, keyId="alias/{app}")),
    ("s3", "GetObject", 75, "d", (_S3_RP, None, _S3_RES, _S3_GET)),
    ("s3", "PutObject", 35, "w d", (_S3_RP, _S3_SSE, _S3_RES, _S3_PUT)),
    ("s3", "HeadObject", 15, "d", (_S3_RP, None, _S3_RES, _S3_GET)),
    ("s3", "ListBuckets", 4, "", {"Host": "s3.amazonaws.com"}),
    ("s3", "GetBucketLocation", 8, "", {"bucketName": "{bucket}", "location": ""}),
    ("s3", "GetBucketAcl", 6, "", {"bucketName": "{bucket}", "acl": ""}),
    ("ec2", "DescribeInstances", 25, "", _EC2_IDS), ("ec2", "DescribeInstances", 25, "", _EC2_VPC),
    ("ec2", "DescribeNetworkInterfaces", 15, "", _EC2_VPC), ("ec2", "DescribeSecurityGroups", 10, "", _EC2_VPC),
    ("ec2", "DescribeVolumes", 8, "", _EC2_VPC), ("ec2", "DescribeInstanceStatus", 6, "", _EC2_IDS),
    ("ec2", "RunInstances", 1.5, "w", (_RUN_RP, _RUN_RE)),
    ("ec2", "TerminateInstances", 1.2, "w", ({"instancesSet": {"items": [{"instanceId": "{inst}"}]}}, _TERMINATED)),
    ("ec2", "CreateTags", 2, "w", {"resourcesSet": {"items": [{"resourceId": "{inst}"}]}, "tagSet": _TAGS}),
    ("ssm", "UpdateInstanceInformation", 40, "w", {
        "instanceId": "{inst}", "agentVersion": "3.3.859.0", "agentStatus": "Active", "platformType": "Linux",
        "platformName": "Amazon Linux", "platformVersion": "2023", "iPAddress": "10.0.{n}.9",
        "computerName": "ip-10-0-{n}-9.ec2.internal", "availabilityZone": "{region}a"}),
    ("ssm", "GetParameter", 45, "", {"name": "/prod/{app}/db-url", "withDecryption": True}),
    ("ssm", "GetParameters", 10, "", {"names": ["/prod/{app}/api-key", "/prod/{app}/url"], "withDecryption": True}),
    ("dynamodb", "GetItem", 35, "d", ({"tableName": "{table}", "key": _DDB_KEY, "consistentRead": False},
                                      None, _DDB_RES)),
    ("dynamodb", "PutItem", 18, "w d", ({"tableName": "{table}", "key": _DDB_KEY}, None, _DDB_RES)),
    ("dynamodb", "Query", 25, "d", ({"tableName": "{table}", "keyConditionExpression": "#pk = :pk", "limit": 100,
                                     "expressionAttributeNames": {"#pk": "pk"}, "expressionAttributeValues": {
                                         ":pk": _HIDDEN}, "scanIndexForward": False}, None, _DDB_RES)),
    ("dynamodb", "UpdateItem", 10, "w d", ({"tableName": "{table}", "key": _DDB_KEY, "updateExpression":
                                            "SET #s = :s", "returnValues": "UPDATED_NEW"}, None, _DDB_RES)),
    ("dynamodb", "DescribeTable", 8, "", {"tableName": "{table}"}),
    ("lambda", "Invoke", 20, "w d lambda", ({"functionName": _FN_ARN, "sourceArn": "arn:aws:s3:::{bucket}"}, None,
                                            _FN_RES, {"functionVersion": _FN_ARN + ":$LATEST"})),
    ("lambda", "Invoke", 15, "w d lambda", ({"functionName": _FN_ARN}, None, _FN_RES,
                                            {"functionVersion": _FN_ARN + ":$LATEST"})),
    ("lambda", "GetFunction", 4, "", {"functionName": "{fn}"}), ("lambda", "ListFunctions20150331", 3, "", None),
    ("lambda", "UpdateFunctionCode20150331v2", 0.6, "w", {"functionName": "{fn}", "publish": True,
                                                         "s3Bucket": "{bucket}", "s3Key": "lambda/{hex8}.zip"}),
    ("logs", "CreateLogStream", 15, "w", {"logGroupName": "/aws/lambda/{fn}",
                                          "logStreamName": "{day}/[$LATEST]{hex32}"}),
    ("logs", "DescribeLogGroups", 6, "", {"limit": 50}),
    ("secretsmanager", "GetSecretValue", 18, "", {"secretId": _SECRET}),
    ("monitoring", "GetMetricData", 20, "", {"startTime": "{hour_ago}", "endTime": "{iso}", "maxDatapoints": 100800}),
    ("monitoring", "DescribeAlarms", 6, "", {"maxRecords": 100}),
    ("monitoring", "PutMetricAlarm", 0.8, "w", {"alarmName": "{app}-5xx", "threshold": 5.0, "evaluationPeriods": 3}),
    ("ecr", "GetAuthorizationToken", 12, "", {"registryIds": ["{acct}"]}),
    ("ecr", "BatchGetImage", 8, "", {"repositoryName": "{app}", "registryId": "{acct}",
                                     "imageIds": [{"imageTag": "v1"}]}),
    ("ecs", "DescribeServices", 6, "", {"cluster": "{app}-cluster", "services": ["{app}-api"]}),
    ("ecs", "ListTasks", 5, "", {"cluster": "{app}-cluster"}), ("eks", "DescribeCluster", 5, "", {"name": "{app}-eks"}),
    ("elasticloadbalancing", "DescribeTargetHealth", 10, "", {
        "targetGroupArn": "arn:aws:elasticloadbalancing:{region}:{acct}:targetgroup/{app}-tg/{hex16}"}),
    ("autoscaling", "DescribeAutoScalingGroups", 6, "", {"maxRecords": 100}),
    ("rds", "DescribeDBInstances", 4, "", {"dBInstanceIdentifier": "{app}-db-{n}"}),
    ("sns", "Publish", 8, "w d", {"topicArn": "arn:aws:sns:{region}:{acct}:{app}-alerts", "message": _HIDDEN}),
    ("sqs", "SendMessage", 12, "w d", ({"queueUrl": _SQS_URL, "messageBody": _HIDDEN},
                                       {"mD5OfMessageBody": "{hex32}", "messageId": "{uuid}"}, _SQS_RES)),
    ("sqs", "ReceiveMessage", 20, "d", ({"queueUrl": _SQS_URL, "maxNumberOfMessages": 10, "waitTimeSeconds": 20},
                                        None, _SQS_RES)),
    ("sqs", "DeleteMessage", 10, "w d", ({"queueUrl": _SQS_URL, "receiptHandle": _HIDDEN}, None, _SQS_RES)),
    ("route53", "ListHostedZones", 2, "", None), ("route53", "GetChange", 2, "", {"id": "C0{hex16}"}),
    ("cloudformation", "DescribeStacks", 6, "", {"stackName": "{app}-stack"}),
    ("config", "PutEvaluations", 4, "w", {"resultToken": _HIDDEN, "testMode": False, "evaluations": [{
        "complianceResourceType": "AWS::EC2::Instance", "complianceResourceId": "{inst}",
        "complianceType": "NON_COMPLIANT", "orderingTimestamp": "{iso}"}]}),
    ("guardduty", "ListDetectors", 2, "", None), ("guardduty", "GetFindings", 2, "", {"detectorId": "{hex32}"}),
    ("securityhub", "BatchImportFindings", 4, "w", {"findings": _HIDDEN}),
    ("cloudtrail", "LookupEvents", 3, "", {"maxResults": 50, "lookupAttributes": [
        {"attributeKey": "EventName", "attributeValue": "ConsoleLogin"}]}),
    ("cloudtrail", "DescribeTrails", 2, "", {"includeShadowTrails": True}),
    ("cloudtrail", "GetTrailStatus", 2, "", {"name": _TRAIL}),
    ("cloudtrail", "StopLogging", 0.1, "w", {"name": _TRAIL}),
    ("organizations", "DescribeOrganization", 3, "", None), ("organizations", "ListAccounts", 1, "", None),
    ("organizations", "DescribeAccount", 1, "", {"accountId": "{partner}"}),
    ("iam", "GetRole", 8, "", {"roleName": "{app}-prod-lambda-role"}), ("iam", "ListRoles", 3, "", {"maxItems": 1000}),
    ("iam", "CreateUser", 0.3, "w", ({"userName": "{user}"}, {"user": _CREATED})),
    ("iam", "CreateAccessKey", 0.3, "w", ({"userName": "{user}"}, {"accessKey": _NEW_KEY})),
    ("iam", "AttachRolePolicy", 0.6, "w", {"roleName": "{app}-prod-ecs-role",
                                            "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    ("signin", "ConsoleLogin", 2, "w signin", (None, {"ConsoleLogin": "Success"}, None, _LOGIN_MFA)),
    ("signin", "ConsoleLogin", 0.8, "w signin", (None, {"ConsoleLogin": "Success"}, None, _LOGIN)),
    ("signin", "ConsoleLogin", 0.25, "w signin fail", (None, {"ConsoleLogin": "Failure"}, None, _LOGIN)),
    ("signin", "CheckMfa", 0.4, "w signin", (None, {"CheckMfa": "Success"}, None, {"MfaType": "U2F MFA"})),
    ("sso", "ListAccountRoles", 4, "idc", _HIDDEN), ("sso", "ListAccounts", 2, "idc", {"maxResults": 20}),
    ("sso", "GetRoleCredentials", 4, "idc", {"roleName": "AdministratorAccess", "accountId": "{acct}"}),
    ("athena", "StartQueryExecution", 2, "w", ({"queryString": "SELECT eventname, count(*) FROM cloudtrail GROUP BY 1",
        "workGroup": "primary", "queryExecutionContext": {"database": "security"}}, {"queryExecutionId": "{uuid}"})),
    ("glue", "GetTable", 4, "", {"databaseName": "security", "name": "{app}_events"}),
    ("states", "StartExecution", 2, "w", {"stateMachineArn": "arn:aws:states:{region}:{acct}:stateMachine:{app}"}),
    ("kms", "RotateKey", 0.3, "w internal", (None, None, _KMS_RES, {"keyId": "{key}"})),
    ("ec2", "SharedSnapshotCopyInitiated", 0.2, "w internal", (None, None, None, {"snapshotId": "snap-0{hex16}",
                                                                                   "source": "{partner}"})),
    ("ecs", "RegisterTaskDefinition", 1.8, "w", _big), ("cloudformation", "CreateStack", 1.2, "w", _big),
    ("iam", "PutRolePolicy", 1.7, "w", _big),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class _Ev:
    source: str
    name: str
    event_source: str
    build: Callable[[_Ctx], _Parts]
    read_only: bool
    data: bool
    who: str
    etype: str
    error: tuple[str | None, str] | None


def _compile(src: str, name: str, flags: str, parts: object) -> _Ev:
    tokens = flags.split()
    who = next((t for t in tokens if t in _WHO), "data" if "d" in tokens else "api")
    etype = {"signin": "AwsConsoleSignIn", "internal": "AwsServiceEvent"}.get(who, "AwsApiCall")
    templates = (*parts, None, None, None) if isinstance(parts, tuple) else (parts, None, None, None)
    rp, re, res, extra = (_filler(t) for t in templates[:4])

    def fill(c: _Ctx) -> _Parts:
        fields = _Fields(c)
        return rp(fields), re(fields), res(fields), extra(fields)

    build = parts if callable(parts) else fill
    error = (None, "Failed authentication") if "fail" in tokens else None  # errorMessage without errorCode
    return _Ev(src, name, f"{src}.amazonaws.com", build, "w" not in tokens, "d" in tokens, who, etype, error)


_EVENTS = tuple(_compile(src, name, flags, parts) for src, name, _, flags, parts in _SPEC)
_EVENT_CUM = tuple(accumulate(w for _, _, w, _, _ in _SPEC))


def _identity(c: _Ctx, kind: str, ev: _Ev, version: str) -> Record:
    """A userIdentity of the documented ``kind``; sets the caller-dependent ua/ip/tls/console facts on ``c``."""
    rng, p, acct = c.rng, c.pool, c.acct
    c.ip, c.tls, c.console = c.pick(p.ips), True, False
    attrs = {"creationDate": c.iso(c.t - 30 - c.below(3570)), "mfaAuthenticated": "false"}
    if kind == "AssumedRole":
        name, rid, style, path, session = c.pick(p.roles)
        session = session or c.session(style)
        c.arn = f"arn:aws:sts::{acct}:assumed-role/{name}/{session}"
        issuer = {
            "type": "Role",
            "principalId": rid,
            "arn": f"arn:aws:iam::{acct}:role{path}{name}",
            "accountId": acct,
            "userName": name,
        }
        ctx: Record = {"sessionIssuer": issuer, "webIdFederationData": {}, "attributes": attrs}
        if style in ("sso", "ci") and c.rand() < 0.35:
            ctx["sourceIdentity"] = session if "@" in session else c.pick(_EMAILS)
        if style == "ec2" and version != "1.05":
            ctx["ec2RoleDelivery"] = "2.0"
        ident: Record = {
            "type": kind,
            "principalId": f"{rid}:{session}",
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": _aid(rng, "ASIA"),
            "sessionContext": ctx,
        }
        if style == "lambda" and version >= "1.10" and c.rand() < 0.5:
            ident["inScopeOf"] = {
                "issuerType": "AWS::Lambda::Function",
                "credentialsIssuedTo": c.arn_of("lambda", f"function:{session}"),
            }
        c.ua = c.pick(_UAS.get(style, _SDK))
        c.console = c.ua in _CONSOLE
        via = path.split("/")[2] if style == "svc" else ""
        if via or c.rand() < (0.6 if ev.source == "kms" else 0.08):  # a service calling on the role's behalf
            ident["invokedBy"] = c.ip = c.ua = via or c.pick(_VIA.get(ev.source, _VIA_DEFAULT))
            c.tls = c.console = False
        return ident
    if kind in ("IAMUser", "FederatedUser"):
        name, uid, key = c.pick(p.users)
        c.arn, c.ua = f"arn:aws:iam::{acct}:user/{name}", c.pick(_UAS["user"])
        user: Record = {
            "type": "IAMUser",
            "principalId": uid,
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": key,
            "userName": name,
        }
        if kind == "IAMUser":
            if ev.etype == "AwsConsoleSignIn" or c.rand() < 0.1:  # a console session, or the sign-in itself
                c.ua, c.console = c.pick(_BROWSER), ev.etype != "AwsConsoleSignIn"
                user["accessKeyId"] = _aid(rng, "ASIA") if c.console else ""
                if c.console:
                    user["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attrs}
            return user
        fed = f"{name}-{c.pick(('report', 'sync', 'etl'))}"
        c.arn = f"arn:aws:sts::{acct}:federated-user/{fed}"
        del user["accessKeyId"]
        return {
            "type": kind,
            "principalId": f"{acct}:{fed}",
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": _aid(rng, "ASIA"),
            "sessionContext": {"sessionIssuer": user, "webIdFederationData": {}, "attributes": attrs},
        }
    if kind in ("AWSService", "Internal"):  # a service event's userIdentity has no type at all
        c.arn = c.ip = c.ua = "AWS Internal" if kind == "Internal" else c.pick(_VIA.get(ev.source, _VIA_DEFAULT))
        c.tls = False
        return {"type": kind, "invokedBy": c.ua} if kind == "AWSService" else {"accountId": acct, "invokedBy": c.ua}
    if kind == "Root":
        c.arn, c.ua, c.console = f"arn:aws:iam::{acct}:root", c.pick(_BROWSER), ev.etype != "AwsConsoleSignIn"
        root: Record = {
            "type": kind,
            "principalId": acct,
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": _aid(rng, "ASIA") if c.console else "",
        }
        if c.console:
            attrs["mfaAuthenticated"] = "true"
            root["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attrs}
        return root
    if kind == "AWSAccount":  # another account's principal, through a resource policy
        other, session = c.pick(p.partners), _hex(rng, 8)
        c.arn, c.ua = f"arn:aws:sts::{other}:assumed-role/CrossAccountReader/{session}", c.pick(_SDK)
        return {"type": kind, "principalId": f"{_aid(rng, 'AROA', 17)}:{session}", "accountId": other}
    if kind == "IdentityCenterUser":
        c.arn, c.ua = "", c.pick(_BROWSER)
        store = f"arn:aws:identitystore::{acct}:identitystore/{p.store}"
        return {
            "type": kind,
            "accountId": acct,
            "onBehalfOf": {"userId": _uuid(rng), "identityStoreArn": store},
            "credentialId": "".join(rng.choices(_ALNUM, k=64)),
        }
    if kind == "Unknown":
        c.arn, c.ua = "", c.pick(_BROWSER)
        return {
            "type": kind,
            "principalId": acct,
            "arn": "",
            "accountId": acct,
            "accessKeyId": "",
            "userName": c.pick(_EMAILS),
        }
    if kind == "WebIdentityUser":  # EKS pods (IRSA) calling AssumeRoleWithWebIdentity
        sa = f"system:serviceaccount:{c.pick(_APPS)}:app"
        c.arn, c.ua = f"arn:aws:iam::{acct}:oidc-provider/oidc.eks.{c.region}.amazonaws.com/id/{p.store}", _SDK[1]
        return {
            "type": kind,
            "principalId": f"{c.arn}:sts.amazonaws.com:{sa}",
            "userName": sa,
            "identityProvider": c.arn,
        }
    person, c.ua = c.pick(_EMAILS), "aws-internal/3 aws-sdk-java/1.12.720"  # SAMLUser
    c.arn = f"arn:aws:iam::{acct}:saml-provider/Okta"
    return {"type": kind, "principalId": f"{p.store}:{person}", "userName": person, "identityProvider": p.store}


def _wpick(c: _Ctx, items: Sequence[str], cum: Sequence[float]) -> str:
    return items[bisect.bisect(cum, c.rand() * cum[-1])]


def _record(c: _Ctx, ev: _Ev, t: int) -> Record:
    region, rng = c.region, c.rng
    c.t, c.name = t, ev.name
    c.error = ev.error
    kind, version = _wpick(c, *_WHO[ev.who]), _wpick(c, _VERSIONS, _VERSION_CUM)
    if kind == "IdentityCenterUser" and version < "1.09":
        version = "1.10"
    ident = _identity(c, kind, ev, version)
    rp, re, res, extra = ev.build(c)
    if c.error is None and ev.etype == "AwsApiCall" and c.rand() < 0.05:
        code, msg = c.pick(_ERRORS.get(ev.source, _ERRORS_DEFAULT))
        c.error, re = (code, msg.format(arn=c.arn or c.acct, name=ev.name, svc=ev.source)), None
    vpce = ""
    if c.tls and ev.source in _VPCE_SOURCES and kind in ("AssumedRole", "AWSAccount") and c.rand() < 0.2:
        vpce, c.ip = c.pick(c.pool.vpces), c.ip10()
    r: Record = {
        "eventVersion": version,
        "userIdentity": ident,
        "eventTime": c.iso(t),
        "eventSource": ev.event_source,
        "eventName": ev.name,
        "awsRegion": region,
        "sourceIPAddress": c.ip,
        "userAgent": c.ua,
    }
    if c.error is not None:
        if c.error[0] is not None:
            r["errorCode"] = c.error[0]
        r["errorMessage"] = c.error[1]
    r["requestParameters"], r["responseElements"] = rp, re
    if extra is not None and ev.etype != "AwsServiceEvent":
        r["additionalEventData"] = extra
    if ev.etype != "AwsConsoleSignIn":
        r["requestID"] = f"{rng.getrandbits(64):016X}" if ev.source == "s3" else _uuid(rng)
    r["eventID"], r["readOnly"] = _uuid(rng), ev.read_only
    if res is not None:
        r["resources"] = res
    r["eventType"] = ev.etype
    modern = version != "1.05"  # 1.05 predates managementEvent, eventCategory, tlsDetails, ...
    if modern:
        r["managementEvent"] = not ev.data
    r["recipientAccountId"] = c.acct
    if extra is not None and ev.etype == "AwsServiceEvent":
        r["serviceEventDetails"] = extra
    if kind in ("AWSService", "AWSAccount") and c.rand() < 0.6:
        r["sharedEventID"] = _uuid(rng)
    if vpce:
        r["vpcEndpointId"] = vpce
        if version >= "1.09":
            r["vpcEndpointAccountId"] = c.acct
    if modern:
        r["eventCategory"] = "Data" if ev.data else "Management"
        if c.tls:
            tls_version, suite = _TLS[c.below(3)]
            host = (
                f"{region}.signin.aws.amazon.com"
                if ev.source == "signin"
                else _HOSTS.get(ev.source) or f"{ev.source}.{region}.amazonaws.com"
            )
            r["tlsDetails"] = {"tlsVersion": tls_version, "cipherSuite": suite, "clientProvidedHostHeader": host}
        if c.console:
            r["sessionCredentialFromConsole"] = "true"
    return r


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def generate_records(
    seed: int, account_id: str, region: str, start: datetime, count: int, span_seconds: int = 300
) -> list[dict[str, object]]:
    """``count`` records of one account and region, eventTime in [start, start + span_seconds), sorted.

    A naive ``start`` is UTC. All randomness comes from a ``random.Random`` seeded from the arguments.
    """
    if count < 0 or span_seconds <= 0:
        raise ValueError("count must be >= 0 and span_seconds > 0")
    t0 = int(_utc(start).timestamp())
    rng = random.Random(f"records|{seed}|{account_id}|{region}|{t0}")
    c = _Ctx(rng, account_id, region, time.strftime("%Y/%m/%d", time.gmtime(t0)))
    times = sorted(int(c.rand() * span_seconds) for _ in range(count))
    events = rng.choices(_EVENTS, cum_weights=_EVENT_CUM, k=count)
    # Only acyclic containers are made here, yet the cyclic GC would keep rescanning them all: it halved the speed.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return [_record(c, ev, t0 + dt) for dt, ev in zip(times, events, strict=True)]
    finally:
        if gc_was_enabled:
            gc.enable()


def log_file_bytes(records: list[dict[str, object]]) -> bytes:
    """A log file body as CloudTrail writes it: gzip of ``{"Records": [...]}`` (mtime 0: same bytes each run)."""
    return gzip.compress(orjson.dumps({"Records": records}), compresslevel=6, mtime=0)


def log_key(account_id: str, region: str, when: datetime, suffix: str, org_id: str | None = None) -> str:
    """``AWSLogs/[o-id/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>``."""
    when, org = _utc(when), f"{org_id}/" if org_id else ""
    return (
        f"AWSLogs/{org}{account_id}/CloudTrail/{region}/{when:%Y/%m/%d}/"
        f"{account_id}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"
    )


def random_suffix(rng: random.Random) -> str:
    """The 16-character [A-Za-z0-9] tail CloudTrail puts on every log file name."""
    return "".join(rng.choices(_ALNUM, k=16))


@dataclass(frozen=True)
class GeneratedFile:
    key: str
    body: bytes
    record_count: int


def generate_files(
    seed: int,
    accounts: Sequence[str],
    regions: Sequence[str],
    start: datetime,
    days: int,
    files_per_hour: int = 12,
    records_per_file: tuple[int, int] = (1, 200),
    org_id: str | None = None,
) -> Iterator[GeneratedFile]:
    """Log files of every (account, region) for ``days`` days from ``start`` (floored to the minute).

    Files come in key order within each (account, region). Each hour has ``files_per_hour`` slots; a file's key
    minute is its slot's start and its records fall inside the slot. Record counts skew small, as real files do.
    A file depends only on (seed, account, region, slot), not on what else is generated.
    """
    lo, hi = records_per_file
    if not 1 <= files_per_hour <= 3600 or not 0 <= lo <= hi or days < 0:
        raise ValueError("need 1 <= files_per_hour <= 3600, 0 <= min <= max records per file, days >= 0")
    slot, t0 = 3600 // files_per_hour, int(_utc(start).timestamp()) // 60 * 60
    for account in accounts:
        for region in regions:
            for hour in range(days * 24):
                batch = []
                for ts in range(t0 + hour * 3600, t0 + (hour + 1) * 3600, slot)[:files_per_hour]:
                    rng = random.Random(f"file|{seed}|{account}|{region}|{ts}")
                    count, when = lo + int((hi - lo + 1) * rng.random() ** 3), datetime.fromtimestamp(ts, UTC)
                    batch.append((log_key(account, region, when, random_suffix(rng), org_id), when, count))
                for key, when, count in sorted(batch):  # same-minute files sort by suffix
                    yield GeneratedFile(
                        key, log_file_bytes(generate_records(seed, account, region, when, count, slot)), count
                    )

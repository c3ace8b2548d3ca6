"""Deterministic generator of realistic CloudTrail log files.

Why it exists: ``ingester demo``, the integration tests and the benchmarks all need CloudTrail input without
an AWS account. It must be *reproducible* (same seed, same bytes: failures replay, benchmark runs compare) and
*realistic* enough to exercise the decoder as production does: every documented userIdentity shape, fields
that come and go with eventVersion, requestParameters/responseElements that are objects, null or a string,
~5% errors, data and management events, ~1.2 KB records with a rare 10-30 KB one, and keys laid out as
CloudTrail writes them. All names, IDs and IPs are synthetic.
"""

from __future__ import annotations

import base64
import bisect
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
_Parts = tuple[object, object, list[Record] | None, Record | None]

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
        "aws-sdk-js/3.637.0 ua/2.0 os/linux#5.10.224-212.876.amzn2.x86_64 lang/js md/nodejs#20.17.0")
_CLI = ("aws-cli/2.17.42 md/awscrt#0.21.2 ua/2.0 os/macos#23.6.0 md/arch#arm64 lang/python#3.11.9 "
        "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#s3.cp",)
_IAC = ("APN/1.0 HashiCorp/1.0 Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.65.0 "
        "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.4 ua/2.0 os/linux",)
_UAS: dict[str, tuple[str, ...]] = {
    "ec2": (*_SDK, "aws-sdk-go/1.55.5 (go1.22.5; linux; amd64) amazon-ssm-agent/3.3.859.0"),
    "lambda": ("Boto3/1.34.145 md/Botocore#1.34.145 ua/2.0 os/linux#5.10.224-235.880.amzn2.x86_64 "
               "lang/python#3.12.5 exec-env/AWS_Lambda_python3.12 Botocore/1.34.145",),
    "sso": (*_CONSOLE, *_CONSOLE, *_CLI, _SDK[0]), "ci": (*_IAC, *_CLI), "user": (*_CLI, *_SDK, *_IAC),
}
_TLS = (("TLSv1.3", "TLS_AES_128_GCM_SHA256"), ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))
_VERSIONS, _VERSION_CUM = ("1.05", "1.08", "1.09", "1.10", "1.11"), tuple(accumulate((7, 33, 30, 18, 12)))
_VIA_DEFAULT = ("cloudformation.amazonaws.com", "config.amazonaws.com", "autoscaling.amazonaws.com",
                "elasticloadbalancing.amazonaws.com", "AWS Internal")
_VIA = {
    "sts": ("lambda.amazonaws.com", "ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "eks.amazonaws.com",
            "states.amazonaws.com", "glue.amazonaws.com"),
    "kms": ("s3.amazonaws.com", "secretsmanager.amazonaws.com", "dynamodb.amazonaws.com", "sqs.amazonaws.com"),
    "s3": ("cloudtrail.amazonaws.com", "config.amazonaws.com", "delivery.logs.amazonaws.com"),
    "lambda": ("events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com", "apigateway.amazonaws.com"),
}
_HOSTS = {"iam": "iam.amazonaws.com", "organizations": "organizations.us-east-1.amazonaws.com",
          "route53": "route53.amazonaws.com"}
_VPCE_SOURCES = frozenset(("s3", "kms", "sts", "dynamodb", "ssm", "secretsmanager", "ecr", "logs", "sqs"))
# Who calls what: identity-type weights per kind of event.
_WHO: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    name: (kinds, tuple(accumulate(weights))) for name, kinds, weights in (
        ("api", ("AssumedRole", "IAMUser", "AWSAccount", "FederatedUser", "Root", "AWSService"),
         (84, 9, 3, 1.5, 1, 1.5)),
        ("data", ("AssumedRole", "AWSAccount", "IAMUser", "AWSService"), (86, 6, 4, 4)),
        ("sts", ("AWSService", "AssumedRole", "IAMUser", "AWSAccount", "FederatedUser"), (48, 38, 6, 6, 2)),
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


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _aid(rng: random.Random, prefix: str, n: int = 16) -> str:
    """An IAM-style unique ID or access key ID: prefix + n characters of [A-Z2-7]."""
    return prefix + rng.randbytes(n).translate(_B32).decode()


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _b64(rng: random.Random, nbytes: int) -> str:
    return base64.b64encode(rng.randbytes(nbytes)).decode()


def _amz_date(ts: int) -> str:
    tm = time.gmtime(ts)
    return (f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday}, {tm.tm_year}, {tm.tm_hour % 12 or 12}:{tm.tm_min:02d}:"
            f"{tm.tm_sec:02d} {'AM' if tm.tm_hour < 12 else 'PM'}")


@dataclass(frozen=True, slots=True)
class _Pool:
    """One account's stable cast: the same roles, buckets and keys show up file after file."""

    roles: tuple[tuple[str, str, str, str, str], ...]  # name, role id, session style, path, fixed session
    users: tuple[tuple[str, str, str], ...]  # name, user id, long-term access key
    buckets: tuple[str, ...]
    functions: tuple[str, ...]
    tables: tuple[str, ...]
    instances: tuple[str, ...]
    keys: tuple[str, ...]
    queues: tuple[str, ...]
    ips: tuple[str, ...]
    vpces: tuple[str, ...]
    partners: tuple[str, ...]
    store: str


@lru_cache(maxsize=256)
def _pool(acct: str) -> _Pool:
    rng = random.Random(f"pool|{acct}")
    roles = [(f"AWSReservedSSO_{p}_{_hex(rng, 16)}", "sso", "/aws-reserved/sso.amazonaws.com/", "")
             for p in ("AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess", "DataEngineer")]
    apps = rng.sample(_APPS, 6)
    for app in apps:
        env = rng.choice(("prod", "prod", "staging", "dev"))
        roles += [(f"{app}-{env}-{style}-role", style, "/", "") for style in ("ec2", "ecs", "lambda", "app")]
    svc_path = "/aws-service-role/{}.amazonaws.com/".format
    roles += [("GitHubActionsDeployRole", "ci", "/", "GitHubActions"), ("TerraformExecution", "ci", "/", ""),
              ("DatadogIntegrationRole", "app", "/", "DatadogAWSIntegration"),
              ("OrganizationAccountAccessRole", "sso", "/", ""),
              ("AWSServiceRoleForConfig", "svc", svc_path("config"), "AWSConfig-Describe"),
              ("AWSServiceRoleForAutoScaling", "svc", svc_path("autoscaling"), "AutoScaling")]
    ips = [f"{rng.choice((3, 18, 34, 44, 52, 54))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
           for _ in range(10)]
    ips += [f"{net}.{rng.randrange(1, 255)}" for net in ("203.0.113", "198.51.100", "192.0.2")]
    ips.append(f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}")
    users = ("jenkins", "legacy-backup", "ci-deployer", *rng.sample(_PEOPLE, 3))
    return _Pool(roles=tuple((n, _aid(rng, "AROA", 17), s, p, f) for n, s, p, f in roles),
                 users=tuple((u, _aid(rng, "AIDA", 17), _aid(rng, "AKIA")) for u in users),
                 buckets=tuple(f"{a}-{k}-{acct}" for a in apps[:4] for k in ("data", "artifacts")),
                 functions=tuple(f"{a}-{f}" for a in apps for f in ("handler", "worker", "authorizer")),
                 tables=tuple(f"{a}-{t}" for a in apps for t in ("items", "sessions")),
                 instances=tuple(f"i-0{_hex(rng, 16)}" for _ in range(24)),
                 keys=tuple(_uuid(rng) for _ in range(6)),
                 queues=tuple(f"{a}-{q}" for a in apps for q in ("events", "dlq")), ips=tuple(ips),
                 vpces=tuple(f"vpce-0{_hex(rng, 16)}" for _ in range(3)),
                 partners=tuple(str(rng.randrange(10**11, 10**12)) for _ in range(4)), store=f"d-{_hex(rng, 10)}")


class _Ctx:
    """Per-call state handed to builders: the rng, the account's pool, and who-dependent facts of the record."""

    __slots__ = ("acct", "arn", "console", "day", "error", "ip", "iso_cache", "name", "pool", "rand", "region",
                 "rng", "t", "tls", "ua")

    def __init__(self, rng: random.Random, acct: str, region: str, day: str) -> None:
        self.rng, self.acct, self.region, self.day, self.pool = rng, acct, region, day, _pool(acct)
        self.t, self.name, self.arn, self.ua, self.ip, self.tls, self.console = 0, "", "", "", "", True, False
        self.error: tuple[str | None, str] | None = None
        self.iso_cache: dict[int, str] = {}
        self.rand = rng.random

    def pick(self, seq: Sequence[_T]) -> _T:
        """rng.choice without its rejection loop (3x faster; this generator's hot path)."""
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

    def res(self, typ: str, arn: str) -> list[Record]:
        return [{"accountId": self.acct, "type": typ, "ARN": arn}]

    def key_arn(self) -> str:
        return self.arn_of("kms", f"key/{self.pick(self.pool.keys)}")

    def ip10(self) -> str:
        return f"10.{self.below(256)}.{self.below(256)}.{self.below(254) + 1}"


Builder = Callable[[_Ctx], _Parts]
# Values for "{field}" in the simple requestParameters templates of _SPEC.
_FIELDS: dict[str, Callable[[_Ctx], str]] = {
    "app": lambda c: c.pick(_APPS), "acct": lambda c: c.acct, "region": lambda c: c.region,
    "hex": lambda c: _hex(c.rng, 8), "hex16": lambda c: _hex(c.rng, 16), "day": lambda c: c.day,
    "n": lambda c: str(c.below(99) + 1), "n2": lambda c: str(c.below(254) + 1),
    "bucket": lambda c: c.pick(c.pool.buckets), "fn": lambda c: c.pick(c.pool.functions),
    "table": lambda c: c.pick(c.pool.tables), "inst": lambda c: c.pick(c.pool.instances),
    "ip10": _Ctx.ip10, "partner": lambda c: c.pick(c.pool.partners), "person": lambda c: c.pick(_PEOPLE), "iso": lambda c: c.iso(c.t),
    "hour_ago": lambda c: c.iso(c.t - 3600),
}


def _s3_object(c: _Ctx) -> _Parts:
    rng, write = c.rng, c.name == "PutObject"
    bucket, size = c.pick(c.pool.buckets), int(rng.lognormvariate(9, 2))
    key = f"{c.pick(('raw', 'exports', 'uploads'))}/{c.day}/{_hex(rng, 12)}.{c.pick(('gz', 'parquet'))}"
    re = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": c.key_arn(),
          "x-amz-server-side-encryption-bucket-key-enabled": "true"} if write else None
    aed = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
           "bytesTransferredIn": size if write else 0, "SSEApplied": "SSE_KMS" if write else "Default_SSE_S3",
           "AuthenticationMethod": "AuthHeader", "x-amz-id-2": _b64(rng, 57), "bytesTransferredOut": 0 if write else size}
    res: list[Record] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                         {"accountId": c.acct, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    return {"bucketName": bucket, "Host": f"{bucket}.s3.{c.region}.amazonaws.com", "key": key}, re, res, aed


def _ec2(c: _Ctx) -> _Parts:
    rng = c.rng
    items = [{"instanceId": c.pick(c.pool.instances)} for _ in range(c.below(3) + 1)]
    if c.name == "TerminateInstances":
        out = [{**i, "currentState": {"code": 32, "name": "shutting-down"},
                "previousState": {"code": 16, "name": "running"}} for i in items]
        return {"instancesSet": {"items": items}}, {"requestId": _uuid(rng), "instancesSet": {"items": out}}, None, None
    if c.name != "RunInstances":
        if rng.random() < 0.5:
            return {"instancesSet": {"items": items}, "filterSet": {}, "includeAllInstances": False}, None, None, None
        vpc = {"name": "vpc-id", "valueSet": {"items": [{"value": f"vpc-0{_hex(rng, 16)}"}]}}
        return {"maxResults": 1000, "filterSet": {"items": [vpc]}}, None, None, None
    ip, subnet, itype = c.ip10(), f"subnet-0{_hex(rng, 16)}", c.pick(("m7g.large", "c7i.xlarge", "t3.medium"))
    tags = {"items": [{"key": "Name", "value": f"{c.pick(_APPS)}-worker"}, {"key": "env", "value": "prod"}]}
    rp = {"instancesSet": {"items": [{"imageId": f"ami-0{_hex(rng, 16)}", "minCount": 1, "maxCount": 1}]},
          "instanceType": itype, "blockDeviceMapping": {}, "monitoring": {"enabled": False},
          "disableApiTermination": False, "clientToken": _uuid(rng),
          "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": tags}]},
          "launchTemplate": {"launchTemplateId": f"lt-0{_hex(rng, 16)}", "version": "$Latest"}}
    eni = {"networkInterfaceId": f"eni-0{_hex(rng, 16)}", "subnetId": subnet, "ownerId": c.acct,
           "status": "in-use", "privateIpAddress": ip, "macAddress": ":".join(_hex(rng, 2) for _ in range(6)),
           "attachment": {"attachmentId": f"eni-attach-0{_hex(rng, 16)}", "deviceIndex": 0, "status": "attaching"}}
    inst = {"instanceId": f"i-0{_hex(rng, 16)}", "imageId": f"ami-0{_hex(rng, 16)}",
            "instanceState": {"code": 0, "name": "pending"}, "privateDnsName": f"ip-{ip.replace('.', '-')}.ec2.internal",
            "amiLaunchIndex": 0, "productCodes": {}, "instanceType": itype, "launchTime": (c.t + 1) * 1000,
            "placement": {"availabilityZone": f"{c.region}a", "tenancy": "default"}, "subnetId": subnet,
            "monitoring": {"state": "disabled"}, "vpcId": f"vpc-0{_hex(rng, 16)}", "privateIpAddress": ip,
            "stateReason": {"code": "pending", "message": "pending"}, "architecture": "arm64",
            "rootDeviceType": "ebs", "rootDeviceName": "/dev/xvda", "virtualizationType": "hvm", "tagSet": tags,
            "groupSet": {"items": [{"groupId": f"sg-0{_hex(rng, 16)}", "groupName": "app-default"}]},
            "networkInterfaceSet": {"items": [eni]}, "ebsOptimized": True, "enaSupport": True,
            "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2}}
    return rp, {"requestId": _uuid(rng), "reservationId": f"r-0{_hex(rng, 16)}", "ownerId": c.acct,
                "instancesSet": {"items": [inst]}}, None, None


def _iam_user(c: _Ctx) -> _Parts:
    user, date = f"{c.pick(_PEOPLE)}.{c.pick(('ops', 'dev', 'svc'))}", _amz_date(c.t)
    if c.name == "CreateUser":
        return {"userName": user}, {"user": {"path": "/", "userName": user, "userId": _aid(c.rng, "AIDA", 17),
                                             "arn": f"arn:aws:iam::{c.acct}:user/{user}", "createDate": date}}, None, None
    key = {"userName": user, "accessKeyId": _aid(c.rng, "AKIA"), "status": "Active", "createDate": date}
    return {"userName": user}, {"accessKey": key}, None, None


def _sts(c: _Ctx) -> _Parts:
    rng = c.rng
    role, rid, _, path, _ = c.pick(c.pool.roles)
    session = c.pick((f"{c.pick(_APPS)}-{c.below(10**9)}", c.pick(_EMAILS), "GitHubActions"))
    role_arn = f"arn:aws:iam::{c.acct}:role{path}{role}"
    re = {"credentials": {"accessKeyId": _aid(rng, "ASIA"), "sessionToken": _b64(rng, 380 + c.below(200)),
                          "expiration": _amz_date(c.t + 3600)},
          "assumedRoleUser": {"assumedRoleId": f"{rid}:{session}",
                              "arn": f"arn:aws:sts::{c.acct}:assumed-role/{role}/{session}"}}
    rp: Record = {"roleArn": role_arn, "roleSessionName": session}
    aed: Record | None = None
    if c.name == "AssumeRole":
        rp["durationSeconds"] = 3600
    else:
        aed = {"identityProviderConnectionVerificationMethod": "IdPThumbprint"}
        if c.name == "AssumeRoleWithSAML":
            rp["principalArn"] = f"arn:aws:iam::{c.acct}:saml-provider/Okta"
    return rp, re, c.res("AWS::IAM::Role", role_arn), aed


def _kms(c: _Ctx) -> _Parts:
    rng, key = c.rng, c.key_arn()
    ctx = c.pick(({"aws:s3:arn": f"arn:aws:s3:::{c.pick(c.pool.buckets)}"},
                      {"SecretARN": c.arn_of("secretsmanager", f"secret:prod/db-{_hex(rng, 6)}"),
                       "SecretVersionId": _uuid(rng)},
                      {"aws:lambda:FunctionArn": c.arn_of("lambda", f"function:{c.pick(c.pool.functions)}")}))
    rp: Record = {"encryptionContext": ctx, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if c.name != "Decrypt":
        rp["keyId"] = key if rng.random() < 0.5 else "alias/aws/s3"
        if c.name == "GenerateDataKey":
            rp["keySpec"] = "AES_256"
    return rp, None, c.res("AWS::KMS::Key", key), None


def _signin(c: _Ctx) -> _Parts:
    if c.name == "CheckMfa":
        return None, {"CheckMfa": "Success"}, None, {"MfaType": "U2F MFA"}
    failed, mfa = c.rng.random() < 0.08, c.rng.random() < 0.7
    if failed:
        c.error = (None, "Failed authentication")  # a failed ConsoleLogin has an errorMessage but no errorCode
    aed: Record = {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                   "MobileVersion": "No", "MFAUsed": "Yes" if mfa else "No"}
    if mfa:
        aed["MFAIdentifier"] = f"arn:aws:iam::{c.acct}:mfa/{c.pick(_PEOPLE)}-yubikey"
    return None, {"ConsoleLogin": "Failure" if failed else "Success"}, None, aed


def _dynamodb(c: _Ctx) -> _Parts:
    table = c.pick(c.pool.tables)
    rp: Record = {"tableName": table}
    if c.name == "Query":
        rp.update(keyConditionExpression="#pk = :pk", expressionAttributeNames={"#pk": "pk"}, limit=100,
                  expressionAttributeValues={":pk": _HIDDEN}, scanIndexForward=False)
    else:
        rp["key"] = {"pk": _HIDDEN, "sk": _HIDDEN}
        if c.name != "GetItem":
            rp["returnValues"] = "NONE"
    return rp, None, c.res("AWS::DynamoDB::Table", c.arn_of("dynamodb", f"table/{table}")), None


def _lambda(c: _Ctx) -> _Parts:
    fn = c.arn_of("lambda", f"function:{c.pick(c.pool.functions)}")
    rp: Record = {"functionName": fn}
    if c.rng.random() < 0.5:
        rp["sourceArn"] = f"arn:aws:s3:::{c.pick(c.pool.buckets)}"
    return rp, None, c.res("AWS::Lambda::Function", fn), {"functionVersion": f"{fn}:$LATEST"}


def _sqs(c: _Ctx) -> _Parts:
    queue = c.pick(c.pool.queues)
    rp: Record = {"queueUrl": f"https://sqs.{c.region}.amazonaws.com/{c.acct}/{queue}"}
    re: Record | None = None
    if c.name == "SendMessage":
        rp["messageBody"] = _HIDDEN
        re = {"mD5OfMessageBody": _hex(c.rng, 32), "messageId": _uuid(c.rng)}
    elif c.name == "ReceiveMessage":
        rp.update(maxNumberOfMessages=10, waitTimeSeconds=20)
    else:
        rp["receiptHandle"] = _HIDDEN
    return rp, re, c.res("AWS::SQS::Queue", c.arn_of("sqs", queue)), None


def _service_event(c: _Ctx) -> _Parts:
    if c.name == "RotateKey":
        key = c.key_arn()
        return None, None, c.res("AWS::KMS::Key", key), {"keyId": key.rsplit("/", 1)[1]}
    return None, None, None, {"snapshotId": f"snap-0{_hex(c.rng, 16)}", "source": c.pick(c.pool.partners)}


_ACTIONS = (("s3:GetObject", "s3:PutObject"), ("kms:Decrypt", "kms:GenerateDataKey"), ("sqs:SendMessage",),
            ("dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"), ("logs:PutLogEvents", "logs:CreateLogStream"))


def _big(c: _Ctx) -> _Parts:
    """The rare 10-30 KB records: a task definition, a CloudFormation template, an inline policy."""
    rng, target, name = c.rng, 10_000 + c.below(20_000), f"{c.pick(_APPS)}-{_hex(c.rng, 6)}"
    if c.name == "RegisterTaskDefinition":  # the response echoes the definition: ~130 bytes per variable
        env = [{"name": f"{c.pick(_APPS).upper()}_SETTING_{i}", "value": _hex(rng, 24)} for i in range(target // 130)]
        ctr = [{"name": "app", "image": f"{c.acct}.dkr.ecr.{c.region}.amazonaws.com/app:{_hex(rng, 7)}", "cpu": 1024,
                "memory": 2048, "essential": True, "environment": env, "portMappings": [{"containerPort": 8080}]}]
        td = {"taskDefinitionArn": c.arn_of("ecs", f"task-definition/{name}:1"), "containerDefinitions": ctr,
              "status": "ACTIVE", "revision": 1}
        return ({"family": name, "networkMode": "awsvpc", "containerDefinitions": ctr, "cpu": "1024",
                 "requiresCompatibilities": ["FARGATE"]}, {"taskDefinition": td}, None, None)
    if c.name == "CreateStack":
        resources = {f"Queue{i}": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"{name}-{c.pick(_APPS)}-{i}", "VisibilityTimeout": 30, "KmsMasterKeyId": "alias/aws/sqs"}}
            for i in range(target // 190)}
        body = {"AWSTemplateFormatVersion": "2010-09-09", "Description": name, "Resources": resources}
        return ({"stackName": name, "templateBody": orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(),
                 "capabilities": ["CAPABILITY_NAMED_IAM"], "parameters": [{"parameterKey": "Env", "parameterValue": "prod"}]},
                {"stackId": c.arn_of("cloudformation", f"stack/{name}/{_uuid(rng)}")}, None, None)
    stmts = [{"Sid": f"Allow{i}{name.title().replace('-', '')}", "Effect": "Allow", "Action": c.pick(_ACTIONS),
              "Resource": [f"arn:aws:s3:::{c.pick(c.pool.buckets)}/{_hex(rng, 8)}/*"]} for i in range(target // 230)]
    doc = orjson.dumps({"Version": "2012-10-17", "Statement": stmts}, option=orjson.OPT_INDENT_2).decode()
    return {"roleName": f"{name}-role", "policyName": f"{name}-inline", "policyDocument": doc}, None, None, None


def _athena(c: _Ctx) -> _Parts:
    return ({"queryString": "SELECT eventname, count(*) FROM cloudtrail_logs GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
             "workGroup": "primary", "queryExecutionContext": {"database": "security"}},
            {"queryExecutionId": _uuid(c.rng)}, None, None)


# source, eventName, weight, flags (w: not readOnly, d: data event, plus a _WHO profile), and either a builder
# or a requestParameters template whose top-level "{field}" strings are filled from _FIELDS (None: null).
_SPEC: tuple[tuple[str, str, float, str, Builder | Record | str | None], ...] = (
    ("sts", "AssumeRole", 110, "sts", _sts), ("sts", "GetCallerIdentity", 25, "", None),
    ("sts", "AssumeRoleWithWebIdentity", 14, "oidc", _sts), ("sts", "AssumeRoleWithSAML", 2, "saml", _sts),
    ("kms", "Decrypt", 90, "", _kms), ("kms", "GenerateDataKey", 45, "", _kms), ("kms", "Encrypt", 10, "", _kms),
    ("s3", "GetObject", 110, "d", _s3_object), ("s3", "PutObject", 50, "w d", _s3_object),
    ("s3", "HeadObject", 30, "d", _s3_object), ("s3", "ListBuckets", 4, "", {"Host": "s3.amazonaws.com"}),
    ("s3", "GetBucketLocation", 8, "", {"bucketName": "{bucket}", "location": ""}),
    ("s3", "GetBucketAcl", 6, "", {"bucketName": "{bucket}", "acl": ""}),
    ("ec2", "DescribeInstances", 40, "", _ec2), ("ec2", "DescribeNetworkInterfaces", 15, "", _ec2),
    ("ec2", "DescribeSecurityGroups", 10, "", _ec2), ("ec2", "DescribeVolumes", 8, "", _ec2),
    ("ec2", "RunInstances", 1.5, "w", _ec2), ("ec2", "TerminateInstances", 1.2, "w", _ec2),
    ("ec2", "CreateTags", 2, "w", {"resourcesSet": {"items": [{"resourceId": "{inst}"}]},
                                  "tagSet": {"items": [{"key": "owner", "value": "{person}"}]}}),
    ("ssm", "UpdateInstanceInformation", 40, "w", {
        "instanceId": "{inst}", "agentVersion": "3.3.859.0", "agentStatus": "Active", "platformType": "Linux",
        "platformName": "Amazon Linux", "platformVersion": "2023", "iPAddress": "{ip10}",
        "computerName": "ip-10-0-{n}-{n2}.ec2.internal", "availabilityZone": "{region}a", "agentName": "amazon-ssm-agent"}),
    ("ssm", "GetParameter", 35, "", {"name": "/prod/{app}/db-url", "withDecryption": True}),
    ("ssm", "GetParameters", 10, "", {"names": ["/prod/orders/api-key", "/prod/orders/url"], "withDecryption": True}),
    ("dynamodb", "GetItem", 35, "d", _dynamodb), ("dynamodb", "PutItem", 18, "w d", _dynamodb),
    ("dynamodb", "Query", 25, "d", _dynamodb), ("dynamodb", "UpdateItem", 10, "w d", _dynamodb),
    ("dynamodb", "DescribeTable", 8, "", {"tableName": "{table}"}),
    ("lambda", "Invoke", 35, "w d lambda", _lambda), ("lambda", "GetFunction", 4, "", {"functionName": "{fn}"}),
    ("lambda", "ListFunctions20150331", 3, "", None),
    ("lambda", "UpdateFunctionCode20150331v2", 0.6, "w", {"functionName": "{fn}", "publish": True, "dryRun": False,
                                                         "s3Bucket": "{bucket}", "s3Key": "lambda/{hex}.zip"}),
    ("logs", "CreateLogStream", 15, "w", {"logGroupName": "/aws/lambda/{fn}", "logStreamName": "{day}/[$LATEST]{hex}"}),
    ("logs", "DescribeLogGroups", 6, "", {"limit": 50}),
    ("secretsmanager", "GetSecretValue", 18, "", {"secretId": "arn:aws:secretsmanager:{region}:{acct}:secret:{app}"}),
    ("monitoring", "GetMetricData", 20, "", {"startTime": "{hour_ago}", "endTime": "{iso}", "maxDatapoints": 100800}),
    ("monitoring", "DescribeAlarms", 6, "", {"maxRecords": 100}),
    ("monitoring", "PutMetricAlarm", 0.8, "w", {"alarmName": "{app}-5xx", "threshold": 5.0, "evaluationPeriods": 3}),
    ("ecr", "GetAuthorizationToken", 12, "", {"registryIds": ["{acct}"]}),
    ("ecr", "BatchGetImage", 8, "", {"repositoryName": "{app}", "registryId": "{acct}", "imageIds": [{"imageTag": "v1"}]}),
    ("ecs", "DescribeServices", 6, "", {"cluster": "{app}-cluster", "services": ["{app}-api"]}),
    ("ecs", "ListTasks", 5, "", {"cluster": "{app}-cluster"}), ("eks", "DescribeCluster", 5, "", {"name": "{app}-eks"}),
    ("elasticloadbalancing", "DescribeTargetHealth", 10, "", {
        "targetGroupArn": "arn:aws:elasticloadbalancing:{region}:{acct}:targetgroup/{app}-tg/{hex16}"}),
    ("autoscaling", "DescribeAutoScalingGroups", 6, "", {"maxRecords": 100}),
    ("rds", "DescribeDBInstances", 4, "", {"dBInstanceIdentifier": "{app}-db-{n}"}),
    ("sns", "Publish", 8, "w d", {"topicArn": "arn:aws:sns:{region}:{acct}:{app}-alerts", "message": _HIDDEN}),
    ("sqs", "SendMessage", 12, "w d", _sqs), ("sqs", "ReceiveMessage", 20, "d", _sqs),
    ("sqs", "DeleteMessage", 10, "w d", _sqs),
    ("route53", "ListHostedZones", 2, "", None), ("route53", "GetChange", 2, "", {"id": "C0{hex16}"}),
    ("cloudformation", "DescribeStacks", 6, "", {"stackName": "{app}-stack"}),
    ("config", "PutEvaluations", 4, "w", {"evaluations": [{"complianceResourceType": "AWS::EC2::Instance",
        "complianceResourceId": "{inst}", "complianceType": "NON_COMPLIANT", "orderingTimestamp": "{iso}"}],
        "resultToken": _HIDDEN, "testMode": False}),
    ("guardduty", "ListDetectors", 2, "", None), ("guardduty", "GetFindings", 2, "", {"detectorId": "{hex16}"}),
    ("securityhub", "BatchImportFindings", 4, "w", {"findings": _HIDDEN}),
    ("cloudtrail", "LookupEvents", 3, "", {"maxResults": 50, "lookupAttributes": [
        {"attributeKey": "EventName", "attributeValue": "ConsoleLogin"}]}),
    ("cloudtrail", "DescribeTrails", 2, "", {"includeShadowTrails": True}),
    ("cloudtrail", "GetTrailStatus", 2, "", {"name": "arn:aws:cloudtrail:{region}:{acct}:trail/org-trail"}),
    ("cloudtrail", "StopLogging", 0.1, "w", {"name": "arn:aws:cloudtrail:{region}:{acct}:trail/org-trail"}),
    ("organizations", "DescribeOrganization", 3, "", None), ("organizations", "ListAccounts", 1, "", None),
    ("organizations", "DescribeAccount", 1, "", {"accountId": "{partner}"}),
    ("iam", "GetRole", 8, "", {"roleName": "{app}-prod-lambda-role"}), ("iam", "ListRoles", 3, "", {"maxItems": 1000}),
    ("iam", "CreateUser", 0.3, "w", _iam_user), ("iam", "CreateAccessKey", 0.3, "w", _iam_user),
    ("iam", "AttachRolePolicy", 0.6, "w", {"roleName": "{app}-prod-ecs-role",
                                            "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    ("signin", "ConsoleLogin", 3, "w signin", _signin), ("signin", "CheckMfa", 0.4, "w signin", _signin),
    ("sso", "ListAccountRoles", 4, "idc", _HIDDEN), ("sso", "ListAccounts", 2, "idc", {"maxResults": 20}),
    ("sso", "GetRoleCredentials", 4, "idc", {"roleName": "AdministratorAccess", "accountId": "{acct}"}),
    ("athena", "StartQueryExecution", 2, "w", _athena), ("glue", "GetTable", 4, "", {"name": "{app}_events"}),
    ("states", "StartExecution", 2, "w", {"stateMachineArn": "arn:aws:states:{region}:{acct}:stateMachine:{app}"}),
    ("kms", "RotateKey", 0.3, "w internal", _service_event),
    ("ec2", "SharedSnapshotCopyInitiated", 0.2, "w internal", _service_event),
    ("ecs", "RegisterTaskDefinition", 1.8, "w", _big), ("cloudformation", "CreateStack", 1.2, "w", _big),
    ("iam", "PutRolePolicy", 1.7, "w", _big),
)


class _Lazy(dict[str, str]):
    """format_map source: a template field is computed on first use, then reused within the record."""

    def __init__(self, c: _Ctx) -> None:
        super().__init__()
        self.c = c

    def __missing__(self, key: str) -> str:
        value = self[key] = _FIELDS[key](self.c)
        return value


def _fill(v: object, fields: _Lazy) -> object:
    if isinstance(v, str):
        return v.format_map(fields) if "{" in v else v
    if isinstance(v, dict):
        return {k: _fill(x, fields) for k, x in v.items()}
    if isinstance(v, list):
        return [_fill(x, fields) for x in v]
    return v


def _template(params: Record | str | None) -> Builder:
    if not isinstance(params, dict):
        return lambda c: (params, None, None, None)
    return lambda c: (_fill(params, _Lazy(c)), None, None, None)


@dataclass(frozen=True, slots=True)
class _Ev:
    source: str
    name: str
    event_source: str
    build: Builder
    read_only: bool
    data: bool
    who: str
    etype: str


def _compile(src: str, name: str, flags: str, spec: Builder | Record | str | None) -> _Ev:
    tokens = flags.split()
    who = next((t for t in tokens if t in _WHO), "data" if "d" in tokens else "api")
    etype = {"signin": "AwsConsoleSignIn", "internal": "AwsServiceEvent"}.get(who, "AwsApiCall")
    build = spec if callable(spec) else _template(spec)
    return _Ev(src, name, f"{src}.amazonaws.com", build, "w" not in tokens, "d" in tokens, who, etype)


_EVENTS = tuple(_compile(src, name, flags, spec) for src, name, _, flags, spec in _SPEC)
_EVENT_CUM = tuple(accumulate(w for _, _, w, _, _ in _SPEC))


def _session(c: _Ctx, style: str) -> str:
    rng = c.rng
    if style == "ec2":
        return c.pick(c.pool.instances)
    if style == "ecs":
        return _hex(rng, 32)
    if style == "lambda":
        return c.pick(c.pool.functions)
    return c.pick(_EMAILS) if style == "sso" else f"botocore-session-{c.t - c.below(86400)}"


def _identity(c: _Ctx, kind: str, ev: _Ev, version: str) -> Record:
    """A userIdentity of the documented ``kind``; sets the caller-dependent ua/ip/tls/console facts on ``c``."""
    rng, p, acct = c.rng, c.pool, c.acct
    c.ip, c.tls, c.console = c.pick(p.ips), True, False
    attrs = {"creationDate": c.iso(c.t - 30 - c.below(3570)), "mfaAuthenticated": "false"}
    if kind == "AssumedRole":
        name, rid, style, path, session = c.pick(p.roles)
        session = session or _session(c, style)
        c.arn = f"arn:aws:sts::{acct}:assumed-role/{name}/{session}"
        issuer = {"type": "Role", "principalId": rid, "arn": f"arn:aws:iam::{acct}:role{path}{name}",
                  "accountId": acct, "userName": name}
        ctx: Record = {"sessionIssuer": issuer, "webIdFederationData": {}, "attributes": attrs}
        if style in ("sso", "ci") and rng.random() < 0.35:
            ctx["sourceIdentity"] = session if "@" in session else c.pick(_EMAILS)
        if style == "ec2" and version != "1.05":
            ctx["ec2RoleDelivery"] = "2.0"
        ident: Record = {"type": kind, "principalId": f"{rid}:{session}", "arn": c.arn, "accountId": acct,
                         "accessKeyId": _aid(rng, "ASIA"), "sessionContext": ctx}
        if style == "lambda" and version >= "1.10" and rng.random() < 0.5:
            ident["inScopeOf"] = {"issuerType": "AWS::Lambda::Function",
                                  "credentialsIssuedTo": c.arn_of("lambda", f"function:{session}")}
        c.ua = c.pick(_UAS.get(style, _SDK))
        c.console = c.ua in _CONSOLE
        via = path.split("/")[2] if style == "svc" else ""
        if via or rng.random() < (0.35 if ev.source == "kms" else 0.03):
            ident["invokedBy"] = c.ip = c.ua = via or c.pick(_VIA.get(ev.source, _VIA_DEFAULT))
            c.tls = c.console = False
        return ident
    if kind in ("IAMUser", "FederatedUser"):
        name, uid, key = c.pick(p.users)
        user: Record = {"type": "IAMUser", "principalId": uid, "arn": f"arn:aws:iam::{acct}:user/{name}",
                        "accountId": acct, "accessKeyId": key, "userName": name}
        c.arn, c.ua = f"arn:aws:iam::{acct}:user/{name}", c.pick(_UAS["user"])
        if kind == "IAMUser":
            if ev.etype == "AwsConsoleSignIn" or rng.random() < 0.1:
                c.ua, c.console = c.pick(_BROWSER), ev.etype != "AwsConsoleSignIn"
                user["accessKeyId"] = _aid(rng, "ASIA") if c.console else ""
                if c.console:
                    user["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attrs}
            return user
        fed = f"{name}-{c.pick(('report', 'sync', 'etl'))}"
        c.arn = f"arn:aws:sts::{acct}:federated-user/{fed}"
        del user["accessKeyId"]
        return {"type": kind, "principalId": f"{acct}:{fed}", "arn": c.arn, "accountId": acct,
                "accessKeyId": _aid(rng, "ASIA"),
                "sessionContext": {"sessionIssuer": user, "webIdFederationData": {}, "attributes": attrs}}
    if kind in ("AWSService", "Internal"):  # service events carry a userIdentity with no type at all
        c.arn = c.ip = c.ua = "AWS Internal" if kind == "Internal" else c.pick(_VIA.get(ev.source, _VIA_DEFAULT))
        c.tls = False
        return {"type": kind, "invokedBy": c.ua} if kind == "AWSService" else {"accountId": acct, "invokedBy": c.ua}
    if kind == "Root":
        c.arn, c.ua = f"arn:aws:iam::{acct}:root", c.pick(_BROWSER)
        c.console = ev.etype != "AwsConsoleSignIn"
        root: Record = {"type": kind, "principalId": acct, "arn": c.arn, "accountId": acct,
                        "accessKeyId": _aid(rng, "ASIA") if c.console else ""}
        if c.console:
            attrs["mfaAuthenticated"] = "true"
            root["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attrs}
        return root
    if kind == "AWSAccount":
        other, session = c.pick(p.partners), _hex(rng, 8)
        c.arn, c.ua = f"arn:aws:sts::{other}:assumed-role/CrossAccountReader/{session}", c.pick(_SDK)
        return {"type": kind, "principalId": f"{_aid(rng, 'AROA', 17)}:{session}", "accountId": other}
    if kind == "IdentityCenterUser":
        c.arn, c.ua = "", c.pick(_BROWSER)
        store = f"arn:aws:identitystore::{acct}:identitystore/{p.store}"
        return {"type": kind, "accountId": acct, "onBehalfOf": {"userId": _uuid(rng), "identityStoreArn": store},
                "credentialId": "".join(rng.choices(_ALNUM, k=64))}
    if kind == "Unknown":
        c.arn, c.ua = "", c.pick(_BROWSER)
        return {"type": kind, "principalId": acct, "arn": "", "accountId": acct, "accessKeyId": "",
                "userName": c.pick(_EMAILS)}
    if kind == "WebIdentityUser":
        sa = f"system:serviceaccount:{c.pick(_APPS)}:app"
        c.arn, c.ua = f"arn:aws:iam::{acct}:oidc-provider/oidc.eks.{c.region}.amazonaws.com/id/{p.store}", _SDK[1]
        return {"type": kind, "principalId": f"{c.arn}:sts.amazonaws.com:{sa}", "userName": sa,
                "identityProvider": c.arn}
    person, c.ua = c.pick(_EMAILS), "aws-internal/3 aws-sdk-java/1.12.720"  # SAMLUser
    c.arn = f"arn:aws:iam::{acct}:saml-provider/Okta"
    return {"type": kind, "principalId": f"{p.store}:{person}", "userName": person, "identityProvider": p.store}


def _wpick(rng: random.Random, items: Sequence[str], cum: Sequence[float]) -> str:
    return items[bisect.bisect(cum, rng.random() * cum[-1])]


def _record(c: _Ctx, ev: _Ev, t: int) -> Record:
    rng, region = c.rng, c.region
    c.t, c.name, c.error = t, ev.name, None
    kind = _wpick(rng, *_WHO[ev.who])
    version = _wpick(rng, _VERSIONS, _VERSION_CUM)
    if kind == "IdentityCenterUser" and version < "1.09":
        version = "1.10"
    ident = _identity(c, kind, ev, version)
    rp, re, res, extra = ev.build(c)
    if c.error is None and ev.etype == "AwsApiCall" and rng.random() < 0.05:
        code, msg = c.pick(_ERRORS.get(ev.source, _ERRORS_DEFAULT))
        c.error, re = (code, msg.format(arn=c.arn or c.acct, name=ev.name, svc=ev.source)), None
    vpce = ""
    if c.tls and ev.source in _VPCE_SOURCES and kind in ("AssumedRole", "AWSAccount") and rng.random() < 0.2:
        vpce, c.ip = c.pick(c.pool.vpces), c.ip10()
    r: Record = {"eventVersion": version, "userIdentity": ident, "eventTime": c.iso(t), "eventSource": ev.event_source,
                 "eventName": ev.name, "awsRegion": region, "sourceIPAddress": c.ip, "userAgent": c.ua}
    if c.error is not None:
        if c.error[0] is not None:
            r["errorCode"] = c.error[0]
        r["errorMessage"] = c.error[1]
    r["requestParameters"] = rp
    r["responseElements"] = re
    if extra is not None and ev.etype != "AwsServiceEvent":
        r["additionalEventData"] = extra
    if ev.etype != "AwsConsoleSignIn":
        r["requestID"] = f"{rng.getrandbits(64):016X}" if ev.source == "s3" else _uuid(rng)
    r["eventID"] = _uuid(rng)
    r["readOnly"] = ev.read_only
    if res is not None:
        r["resources"] = res
    r["eventType"] = ev.etype
    modern = version != "1.05"  # 1.05 predates managementEvent, eventCategory, tlsDetails, ...
    if modern:
        r["managementEvent"] = not ev.data
    r["recipientAccountId"] = c.acct
    if extra is not None and ev.etype == "AwsServiceEvent":
        r["serviceEventDetails"] = extra
    if kind in ("AWSService", "AWSAccount") and rng.random() < 0.6:
        r["sharedEventID"] = _uuid(rng)
    if vpce:
        r["vpcEndpointId"] = vpce
        if version >= "1.09":
            r["vpcEndpointAccountId"] = c.acct
    if modern:
        r["eventCategory"] = "Data" if ev.data else "Management"
        if c.tls:
            tls_version, suite = _TLS[c.below(3)]
            host = (f"{region}.signin.aws.amazon.com" if ev.source == "signin"
                    else _HOSTS.get(ev.source) or f"{ev.source}.{region}.amazonaws.com")
            r["tlsDetails"] = {"tlsVersion": tls_version, "cipherSuite": suite, "clientProvidedHostHeader": host}
        if c.console:
            r["sessionCredentialFromConsole"] = "true"
    return r


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def generate_records(seed: int, account_id: str, region: str, start: datetime, count: int,
                     span_seconds: int = 300) -> list[dict[str, object]]:
    """``count`` records of one account and region, eventTime in [start, start + span_seconds), sorted.

    A naive ``start`` is UTC. All randomness comes from a ``random.Random`` seeded from the arguments.
    """
    if count < 0 or span_seconds <= 0:
        raise ValueError("count must be >= 0 and span_seconds > 0")
    t0 = int(_utc(start).timestamp())
    rng = random.Random(f"records|{seed}|{account_id}|{region}|{t0}")
    c = _Ctx(rng, account_id, region, time.strftime("%Y/%m/%d", time.gmtime(t0)))
    rand = rng.random
    times = sorted(int(rand() * span_seconds) for _ in range(count))
    events = rng.choices(_EVENTS, cum_weights=_EVENT_CUM, k=count)
    return [_record(c, ev, t0 + dt) for dt, ev in zip(times, events, strict=True)]


def log_file_bytes(records: list[dict[str, object]]) -> bytes:
    """A log file body as CloudTrail writes it: gzip of ``{"Records": [...]}`` (mtime 0: same bytes each run)."""
    return gzip.compress(orjson.dumps({"Records": records}), compresslevel=6, mtime=0)


def log_key(account_id: str, region: str, when: datetime, suffix: str, org_id: str | None = None) -> str:
    """``AWSLogs/[o-id/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<suffix>``."""
    when, org = _utc(when), f"{org_id}/" if org_id else ""
    return (f"AWSLogs/{org}{account_id}/CloudTrail/{region}/{when:%Y/%m/%d}/"
            f"{account_id}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz")


def random_suffix(rng: random.Random) -> str:
    """The 16-character [A-Za-z0-9] tail CloudTrail puts on every log file name."""
    return "".join(rng.choices(_ALNUM, k=16))


@dataclass(frozen=True)
class GeneratedFile:
    key: str
    body: bytes
    record_count: int


def generate_files(seed: int, accounts: Sequence[str], regions: Sequence[str], start: datetime,
                   days: int, files_per_hour: int = 12, records_per_file: tuple[int, int] = (1, 200),
                   org_id: str | None = None) -> Iterator[GeneratedFile]:
    """Log files of every (account, region) for ``days`` days from ``start`` (floored to the minute).

    Files come in key order within each (account, region). Each hour has ``files_per_hour`` slots; a file's
    key minute is its slot's start and its records fall inside the slot. Record counts skew small, as real
    files do. A file depends only on (seed, account, region, slot), not on what else is generated.
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
                    count = lo + int((hi - lo + 1) * rng.random() ** 3)
                    when = datetime.fromtimestamp(ts, UTC)
                    batch.append((log_key(account, region, when, random_suffix(rng), org_id), when, count))
                for key, when, count in sorted(batch):
                    records = generate_records(seed, account, region, when, count, slot)
                    yield GeneratedFile(key, log_file_bytes(records), count)

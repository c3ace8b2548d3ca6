"""The generator's event mix, compiled from ``data/events.toml``: the fields its templates use and the builders.

Why compiled once at import: a template is a nested dict of ``"{field}"`` strings; walking it per record to find
the fields would cost more than the rest of the record. Each template becomes a function that copies its
constant parts and fills only the dynamic ones. The few payloads that are not a fixed shape (AssumeRole and its
credentials, the rare 10-30 KB records) are builders here, named from the data by ``build = "..."``.

Also here, because fields read them: the per-call context (:class:`Ctx`) and each account's stable cast
(:class:`Pool`). All randomness comes from the ``random.Random`` in the context, in a fixed order.
"""

from __future__ import annotations

import base64
import random
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Final, TypeVar

import orjson

from ingester.demo.tables import EventEntry, load_events, load_vocabulary

Record = dict[str, object]
_T = TypeVar("_T")
# requestParameters, responseElements, resources, additionalEventData (serviceEventDetails for service events)
Parts = tuple[object, object, object, object]

VOCABULARY: Final = load_vocabulary()
EMAILS: Final = tuple(f"{p}@example.com" for p in VOCABULARY.people)
ALNUM: Final = string.ascii_letters + string.digits
_B32 = bytes((string.ascii_uppercase + "234567").encode()[b & 31] for b in range(256))  # uniform: 256 % 32 == 0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def aws_id(rng: random.Random, prefix: str, n: int = 16) -> str:
    """An IAM-style unique ID or access key ID: prefix + n characters of [A-Z2-7]."""
    return prefix + rng.randbytes(n).translate(_B32).decode()


def hex_digits(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _amz_date(ts: int) -> str:
    tm = time.gmtime(ts)
    clock = f"{tm.tm_hour % 12 or 12}:{tm.tm_min:02d}:{tm.tm_sec:02d} {'AM' if tm.tm_hour < 12 else 'PM'}"
    return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday}, {tm.tm_year}, {clock}"


@dataclass(frozen=True, slots=True)
class Pool:
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
def _pool(acct: str) -> Pool:
    rng, cast = random.Random(f"pool|{acct}"), VOCABULARY.cast
    sso = "/aws-reserved/sso.amazonaws.com/"
    roles = [(f"AWSReservedSSO_{p}_{hex_digits(rng, 16)}", "sso", sso, "") for p in cast.sso_permission_sets]
    apps = tuple(rng.sample(VOCABULARY.apps, cast.app_count))
    for app in apps:
        env = rng.choice(cast.environments)
        roles += [(f"{app}-{env}-{style}-role", style, "/", "") for style in cast.app_role_styles]
    roles += [(role.name, role.style, role.path, role.session) for role in cast.roles]
    nets = [f"{rng.choice(cast.public_first_octets)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(10)]
    ips = [f"{net}.{rng.randrange(1, 255)}" for net in (*nets, "203.0.113", "198.51.100", "192.0.2")]
    ips.append(f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}")
    return Pool(
        roles=tuple((n, aws_id(rng, "AROA", 17), s, p, f) for n, s, p, f in roles),
        users=tuple((u, aws_id(rng, "AIDA", 17), aws_id(rng, "AKIA")) for u in cast.users),
        apps=apps,
        instances=tuple(f"i-0{hex_digits(rng, 16)}" for _ in range(24)),
        keys=tuple(new_uuid(rng) for _ in range(6)),
        ips=tuple(ips),
        vpces=tuple(f"vpce-0{hex_digits(rng, 16)}" for _ in range(3)),
        partners=tuple(str(rng.randrange(10**11, 10**12)) for _ in range(4)),
        store=f"d-{hex_digits(rng, 10)}",
    )


class Ctx:
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
            return hex_digits(self.rng, 32)
        return self.pick(EMAILS) if style == "sso" else f"botocore-session-{self.t - self.below(86400)}"


_PEOPLE = VOCABULARY.people
# The "{field}"s of the templates. Within one record a field keeps its value (the bucket of requestParameters is
# the bucket of resources), except the _FRESH ones; "{=field}" inserts a non-string value.
FIELDS: Final[dict[str, Callable[[Ctx], object]]] = {
    "acct": lambda c: c.acct,
    "region": lambda c: c.region,
    "day": lambda c: c.day,
    "iso": lambda c: c.iso(c.t),
    "hour_ago": lambda c: c.iso(c.t - 3600),
    "date": lambda c: _amz_date(c.t),
    "app": lambda c: c.pick(c.pool.apps),
    "fn": lambda c: f"{c.pick(c.pool.apps)}-{c.pick(('handler', 'worker', 'authorizer'))}",
    "bucket": lambda c: f"{c.pick(c.pool.apps[:4])}-{c.pick(('data', 'artifacts'))}-{c.acct}",
    "objkey": lambda c: (
        f"{c.pick(('raw', 'exports', 'uploads'))}/{c.day}/{hex_digits(c.rng, 12)}.{c.pick(('gz', 'csv'))}"
    ),
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
    "aid": lambda c: aws_id(c.rng, ""),
    "hex8": lambda c: hex_digits(c.rng, 8),
    "hex16": lambda c: hex_digits(c.rng, 16),
    "hex32": lambda c: hex_digits(c.rng, 32),
    "uuid": lambda c: new_uuid(c.rng),
}
_FRESH = frozenset(("objkey", "aid", "hex8", "hex16", "hex32", "uuid"))


class _Fields(dict[str, object]):
    """format_map source for one record: fields are computed on first use."""

    def __init__(self, c: Ctx) -> None:
        super().__init__()
        self.c = c

    def __missing__(self, key: str) -> object:
        value = FIELDS[key](self.c)
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


def _sts(c: Ctx) -> Parts:
    role, rid, style, path, session = c.pick(c.pool.roles)
    session, role_arn = session or c.session(style), f"arn:aws:iam::{c.acct}:role{path}{role}"
    token = "IQoJb3JpZ2luX2Vj" + base64.b64encode(c.rng.randbytes(260 + c.below(140))).decode()
    creds = {"accessKeyId": aws_id(c.rng, "ASIA"), "sessionToken": token, "expiration": _amz_date(c.t + 3600)}
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


def _big(c: Ctx) -> Parts:
    """The rare 10-30 KB records: a task definition, a CloudFormation template, an inline policy."""
    apps, rng = VOCABULARY.apps, c.rng
    target, name = 10_000 + int(20_000 * c.rand() ** 2), f"{c.pick(apps)}-{hex_digits(c.rng, 6)}"
    if c.name == "RegisterTaskDefinition":  # the response echoes the definition: ~130 bytes per variable
        env = [
            {"name": f"{c.pick(apps).upper()}_SETTING_{i}", "value": hex_digits(rng, 24)} for i in range(target // 130)
        ]
        image = f"{c.acct}.dkr.ecr.{c.region}.amazonaws.com/app:{hex_digits(rng, 7)}"
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
        return rp, {"stackId": c.arn_of("cloudformation", f"stack/{name}/{new_uuid(rng)}")}, None, None
    buckets = [f"arn:aws:s3:::{app}-data-{c.acct}/{hex_digits(rng, 8)}/*" for app in c.pool.apps]
    actions = VOCABULARY.policy_actions
    stmts = [
        {"Sid": f"Allow{i}", "Effect": "Allow", "Action": c.pick(actions), "Resource": c.pick(buckets)}
        for i in range(target // 200)
    ]
    doc = orjson.dumps({"Version": "2012-10-17", "Statement": stmts}, option=orjson.OPT_INDENT_2).decode()
    return {"roleName": f"{name}-role", "policyName": f"{name}-inline", "policyDocument": doc}, None, None, None


BUILDERS: Final[dict[str, Callable[[Ctx], Parts]]] = {"sts": _sts, "big": _big}


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of events.toml, ready to build records: ``build`` fills its four payload parts."""

    source: str
    name: str
    event_source: str
    build: Callable[[Ctx], Parts]
    read_only: bool
    data: bool
    who: str
    etype: str
    error: tuple[str | None, str] | None


def _compile(entry: EventEntry) -> Event:
    who = entry.who or ("data" if entry.data else "api")
    etype = {"signin": "AwsConsoleSignIn", "internal": "AwsServiceEvent"}.get(who, "AwsApiCall")
    templates = (entry.request, entry.response, entry.resources, entry.extra)
    rp, re, res, extra = (_filler(t) for t in templates)

    def fill(c: Ctx) -> Parts:
        fields = _Fields(c)
        return rp(fields), re(fields), res(fields), extra(fields)

    build = BUILDERS[entry.build] if entry.build else fill
    error = (None, "Failed authentication") if entry.failed_sign_in else None  # errorMessage without errorCode
    src = entry.source
    return Event(src, entry.name, f"{src}.amazonaws.com", build, not entry.write, entry.data, who, etype, error)


_ENTRIES = load_events(VOCABULARY, BUILDERS)
EVENTS: Final = tuple(_compile(entry) for entry in _ENTRIES)
EVENT_CUM: Final = tuple(accumulate(entry.weight for entry in _ENTRIES))

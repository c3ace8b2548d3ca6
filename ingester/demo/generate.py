"""Deterministic generator of realistic CloudTrail log files.

Why it exists: ``ingester demo``, the integration tests and the benchmarks all need CloudTrail input without
an AWS account. It must be *reproducible* (same seed, same bytes: failures replay, benchmark runs compare) and
*realistic* enough to exercise the decoder as production does: every documented userIdentity shape, fields
that come and go with eventVersion, requestParameters/responseElements that are objects, null or a string,
~5% errors, data and management events, ~1.5 KB records with a rare 10-30 KB one, and keys laid out as
CloudTrail writes them. All names, IDs and IPs are synthetic.

Most of it is data: the event mix and payload templates in ``data/events.toml``, the names, user agents,
identity mixes and error messages in ``data/vocabulary.toml`` (loaded by ``tables.py``, compiled by
``templates.py``). This module builds what depends on the caller (userIdentity, sourceIPAddress, userAgent,
TLS, errors), assembles each record, and lays out the files and their keys.
"""

from __future__ import annotations

import bisect
import gc
import gzip
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate

import orjson

from ingester.demo.templates import (
    ALNUM,
    EMAILS,
    EVENT_CUM,
    EVENTS,
    VOCABULARY,
    Ctx,
    Event,
    Record,
    aws_id,
    hex_digits,
    new_uuid,
)

_APPS = VOCABULARY.apps
_UA = VOCABULARY.user_agents.groups
_UAS, _BROWSER, _CONSOLE, _SDK = VOCABULARY.user_agents.by_style, _UA["browser"], _UA["console"], _UA["sdk"]
_EKS_UA = _UA["go_v2"][0]  # what an EKS pod's SDK sends with AssumeRoleWithWebIdentity
_VIA, _ERRORS, _TLS, _HOSTS = VOCABULARY.invoked_by, VOCABULARY.errors, VOCABULARY.tls, VOCABULARY.hosts
_VPCE_SOURCES = VOCABULARY.vpc_endpoint_sources
_VERSIONS = tuple(VOCABULARY.event_versions)
_VERSION_CUM = tuple(accumulate(VOCABULARY.event_versions.values()))
_WHO = {profile: (tuple(w), tuple(accumulate(w.values()))) for profile, w in VOCABULARY.identity_weights.items()}


def _identity(c: Ctx, kind: str, ev: Event, version: str) -> Record:
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
            ctx["sourceIdentity"] = session if "@" in session else c.pick(EMAILS)
        if style == "ec2" and version != "1.05":
            ctx["ec2RoleDelivery"] = "2.0"
        ident: Record = {
            "type": kind,
            "principalId": f"{rid}:{session}",
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": aws_id(rng, "ASIA"),
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
            ident["invokedBy"] = c.ip = c.ua = via or c.pick(_VIA.get(ev.source))
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
                user["accessKeyId"] = aws_id(rng, "ASIA") if c.console else ""
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
            "accessKeyId": aws_id(rng, "ASIA"),
            "sessionContext": {"sessionIssuer": user, "webIdFederationData": {}, "attributes": attrs},
        }
    if kind in ("AWSService", "Internal"):  # a service event's userIdentity has no type at all
        c.arn = c.ip = c.ua = "AWS Internal" if kind == "Internal" else c.pick(_VIA.get(ev.source))
        c.tls = False
        return {"type": kind, "invokedBy": c.ua} if kind == "AWSService" else {"accountId": acct, "invokedBy": c.ua}
    if kind == "Root":
        c.arn, c.ua, c.console = f"arn:aws:iam::{acct}:root", c.pick(_BROWSER), ev.etype != "AwsConsoleSignIn"
        root: Record = {
            "type": kind,
            "principalId": acct,
            "arn": c.arn,
            "accountId": acct,
            "accessKeyId": aws_id(rng, "ASIA") if c.console else "",
        }
        if c.console:
            attrs["mfaAuthenticated"] = "true"
            root["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attrs}
        return root
    if kind == "AWSAccount":  # another account's principal, through a resource policy
        other, session = c.pick(p.partners), hex_digits(rng, 8)
        c.arn, c.ua = f"arn:aws:sts::{other}:assumed-role/CrossAccountReader/{session}", c.pick(_SDK)
        return {"type": kind, "principalId": f"{aws_id(rng, 'AROA', 17)}:{session}", "accountId": other}
    if kind == "IdentityCenterUser":
        c.arn, c.ua = "", c.pick(_BROWSER)
        store = f"arn:aws:identitystore::{acct}:identitystore/{p.store}"
        return {
            "type": kind,
            "accountId": acct,
            "onBehalfOf": {"userId": new_uuid(rng), "identityStoreArn": store},
            "credentialId": "".join(rng.choices(ALNUM, k=64)),
        }
    if kind == "Unknown":
        c.arn, c.ua = "", c.pick(_BROWSER)
        return {
            "type": kind,
            "principalId": acct,
            "arn": "",
            "accountId": acct,
            "accessKeyId": "",
            "userName": c.pick(EMAILS),
        }
    if kind == "WebIdentityUser":  # EKS pods (IRSA) calling AssumeRoleWithWebIdentity
        sa = f"system:serviceaccount:{c.pick(_APPS)}:app"
        c.arn, c.ua = f"arn:aws:iam::{acct}:oidc-provider/oidc.eks.{c.region}.amazonaws.com/id/{p.store}", _EKS_UA
        return {
            "type": kind,
            "principalId": f"{c.arn}:sts.amazonaws.com:{sa}",
            "userName": sa,
            "identityProvider": c.arn,
        }
    person, c.ua = c.pick(EMAILS), "aws-internal/3 aws-sdk-java/1.12.720"  # SAMLUser
    c.arn = f"arn:aws:iam::{acct}:saml-provider/Okta"
    return {"type": kind, "principalId": f"{p.store}:{person}", "userName": person, "identityProvider": p.store}


def _wpick(c: Ctx, items: Sequence[str], cum: Sequence[float]) -> str:
    return items[bisect.bisect(cum, c.rand() * cum[-1])]


def _record(c: Ctx, ev: Event, t: int) -> Record:
    region, rng = c.region, c.rng
    c.t, c.name = t, ev.name
    c.error = ev.error
    kind, version = _wpick(c, *_WHO[ev.who]), _wpick(c, _VERSIONS, _VERSION_CUM)
    if kind == "IdentityCenterUser" and version < "1.09":
        version = "1.10"
    ident = _identity(c, kind, ev, version)
    rp, re, res, extra = ev.build(c)
    if c.error is None and ev.etype == "AwsApiCall" and c.rand() < 0.05:
        code, msg = c.pick(_ERRORS.get(ev.source))
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
        r["requestID"] = f"{rng.getrandbits(64):016X}" if ev.source == "s3" else new_uuid(rng)
    r["eventID"], r["readOnly"] = new_uuid(rng), ev.read_only
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
        r["sharedEventID"] = new_uuid(rng)
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
    c = Ctx(rng, account_id, region, time.strftime("%Y/%m/%d", time.gmtime(t0)))
    times = sorted(int(c.rand() * span_seconds) for _ in range(count))
    events = rng.choices(EVENTS, cum_weights=EVENT_CUM, k=count)
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
    return "".join(rng.choices(ALNUM, k=16))


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

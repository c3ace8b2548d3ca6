"""One decoded CloudTrail record -> one normalized event. Pure: no I/O, no clock, no globals that change.

The event names the things an analyst asks first: who (the real actor, not only the temporary session), did
what (service + API), to which account and region, from where, and did it work. Free-form parts are passed
through as ``Raw``: byte for byte what CloudTrail wrote. This is the "native" schema ``ingester.cloudtrail.v1``;
richer schemas (OCSF) plug in beside it in :mod:`ingester.codec.encode`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from typing import Final

import msgspec
from msgspec import Raw

from ingester.codec.classification import INSIGHT_EVENT_TYPE
from ingester.codec.cloudtrail import NULL, RESULTS, Record, RecordHead, UserIdentity, lenient

SCHEMA = "ingester.cloudtrail.v1"


class Origin(msgspec.Struct, frozen=True, gc=False):
    """Where the record was read: lets a consumer trace any event back to its S3 object."""

    bucket: str
    key: str


class Actor(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    type: str = ""
    arn: str = ""
    account_id: str = ""
    principal_id: str = ""
    # The principal, named as OCSF's actor.user.name (one choice in both formats): the user for IAMUser and
    # Root ("root" when unnamed); for AssumedRole and FederatedUser the session's name (an SSO user's e-mail, an
    # instance id), the role or issuing user being session_issuer_name; for AWSService the service.
    name: str = ""
    access_key_id: str = ""
    # AssumedRole: the role that issued the session, and the session's own name (often the human's name).
    session_issuer_arn: str = ""
    session_issuer_type: str = ""
    session_issuer_name: str = ""
    session_name: str = ""
    session_created: str = ""
    mfa_authenticated: bool | None = None
    source_identity: str = ""
    # AWSService (and calls a service made on a principal's behalf): the service, e.g. "ec2.amazonaws.com".
    invoked_by: str = ""


class Event(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Built positionally in :func:`to_event`: keep the two in the same order."""

    schema: str  # required, so omit_defaults never drops it: consumers route on it
    id: str
    time_ms: int
    time: str
    account_id: str
    region: str
    event_source: str
    event_name: str
    actor: Actor
    outcome: str
    origin: Origin
    event_type: str = ""
    event_category: str = ""
    event_version: str = ""
    read_only: bool | None = None
    source_ip: str = ""
    user_agent: str = ""
    error_code: str = ""
    error_message: str = ""
    request_id: str = ""
    shared_event_id: str = ""
    vpc_endpoint_id: str = ""
    request_parameters: Raw = NULL
    response_elements: Raw = NULL
    additional_event_data: Raw = NULL
    resources: Raw = NULL


@lru_cache(maxsize=4096)
def epoch_ms(event_time: str) -> int:
    """CloudTrail times repeat within a file (second resolution), so a small cache pays for itself. For times
    that seldom repeat (session creation dates), :func:`parse_epoch_ms`: an LRU miss costs more than a parse."""
    return parse_epoch_ms(event_time)


def parse_epoch_ms(event_time: str) -> int:
    """CloudTrail's own shape (``2024-01-01T00:00:00Z``) takes the minute from a cache and adds the seconds:
    ~0.7 us instead of ~1.3 us for ``fromisoformat().timestamp()``; anything else goes to ``fromisoformat``."""
    if len(event_time) == 20 and event_time[16] == ":" and event_time[19] == "Z":
        seconds_ms = _SECONDS_MS.get(event_time[17:19])
        if seconds_ms is not None:
            minute = _minute_ms(event_time[:16])
            return 0 if minute is None else minute + seconds_ms
    return _parse_ms(event_time) or 0


_SECONDS_MS: Final = {f"{second:02d}": second * 1000 for second in range(60)}  # "00".."59" only


@lru_cache(maxsize=4096)
def _minute_ms(minute: str) -> int | None:
    """``2024-01-01T00:00`` (UTC) -> epoch ms; None for what ``fromisoformat`` rejects."""
    return _parse_ms(minute + ":00+00:00")


def _parse_ms(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def _as_bool(value: str | bool | None) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    lowered = value.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _tail(arn: str) -> str:
    """Last path element of an ARN with a path: .../assumed-role/Role/Session -> Session."""
    return arn.rsplit("/", 1)[-1] if arn.count("/") >= 2 or ":federated-user/" in arn else ""


def principal_name(identity: UserIdentity) -> str:
    """The name an analyst searches for, the same in the native and the OCSF format (README, "Output"): a
    session's name for AssumedRole and FederatedUser (from the ARN .../assumed-role/Role/Session, else the
    principalId "AROA...:Session" or "account:Name"), not its role, which is the session issuer; "root" for an
    unnamed Root; the service for AWSService."""
    kind, name = identity.type, identity.user_name
    if name:
        return name
    if kind in ("AssumedRole", "FederatedUser"):
        return _tail(identity.arn) or identity.principal_id.partition(":")[2]
    if kind == "Root":
        return "root"
    if kind == "AWSService":
        return identity.invoked_by
    return ""


# Sign-in events report a failure without an errorCode: in responseElements or serviceEventDetails, keyed by
# the eventName. Only these sources do; any other record's outcome is its errorCode / errorMessage alone.
_SIGN_IN_SOURCES: Final = frozenset({"signin.amazonaws.com", "sso.amazonaws.com"})


def says_failure(raw: Raw, event_name: str) -> bool:
    """A console sign-in's responseElements {"ConsoleLogin": "Failure"}, an Identity Center step's
    serviceEventDetails {"CredentialVerification": "Failure"}."""
    results = lenient(RESULTS, raw)
    return results is not None and results.get(event_name) == "Failure"


def failed(record: Record) -> bool:
    """Whether the call failed, for both formats (the native ``outcome``, the OCSF ``status_id``): an errorCode,
    an errorMessage without one (a failed console sign-in writes only errorMessage "Failed authentication"), or
    a sign-in's own "Failure". The free-form parts are read only for the sign-in sources."""
    if record.error_code or record.error_message:
        return True
    if record.event_source not in _SIGN_IN_SOURCES:
        return False
    return says_failure(record.response_elements, record.event_name) or says_failure(
        record.service_event_details, record.event_name
    )


def outcome(record: Record) -> str:
    """The native outcome: failure or success; an Insights record reports no call of its own and is other (as
    OCSF says status Other)."""
    if record.insight_details is not None or record.event_type == INSIGHT_EVENT_TYPE:
        return "other"
    return "failure" if failed(record) else "success"


def actor_of(identity: UserIdentity) -> Actor:
    """Resolve the real actor: for an AssumedRole session, the session (its name) and the role (its issuer)."""
    session_name = issuer_arn = issuer_type = issuer_name = created = source_identity = ""
    mfa: bool | None = None
    context = identity.session_context
    if context is not None:
        source_identity = context.source_identity
        if context.attributes is not None:
            mfa = _as_bool(context.attributes.mfa_authenticated)
            created = context.attributes.creation_date
        issuer = context.session_issuer
        if issuer is not None:
            issuer_arn, issuer_type, issuer_name = issuer.arn, issuer.type, issuer.user_name
    name = principal_name(identity)
    if identity.type == "AssumedRole":
        session_name = name
    return Actor(
        type=identity.type,
        arn=identity.arn,
        account_id=identity.account_id,
        principal_id=identity.principal_id,
        name=name,
        access_key_id=identity.access_key_id,
        session_issuer_arn=issuer_arn,
        session_issuer_type=issuer_type,
        session_issuer_name=issuer_name,
        session_name=session_name,
        session_created=created,
        mfa_authenticated=mfa,
        source_identity=source_identity,
        invoked_by=identity.invoked_by,
    )


def event_id(record: RecordHead, account_id: str, raw: Raw) -> str:
    """Deterministic and unique across accounts: eventID alone is per account; hash the bytes when absent."""
    if record.event_id:
        return f"{account_id}:{record.event_id}"
    return "sha256:" + hashlib.sha256(bytes(raw)).hexdigest()[:32]


def to_event(record: Record, raw: Raw, *, account_id: str, region: str, origin: Origin) -> Event:
    """``account_id``/``region`` are the shard's, used when the record lacks recipientAccountId/awsRegion."""
    account = record.recipient_account_id or account_id
    return Event(  # positionally, in Event's order: 26 keyword arguments would cost a dict per event
        SCHEMA,
        event_id(record, account, raw),
        epoch_ms(record.event_time),  # time_ms
        record.event_time,
        account,
        record.aws_region or region,
        record.event_source,
        record.event_name,
        actor_of(record.user_identity),
        outcome(record),
        origin,
        record.event_type,
        record.event_category or ("Management" if record.management_event else ""),
        record.event_version,
        _as_bool(record.read_only),
        record.source_ip_address,
        record.user_agent,
        record.error_code,
        record.error_message,
        record.request_id,
        record.shared_event_id,
        record.vpc_endpoint_id,
        record.request_parameters,
        record.response_elements,
        record.additional_event_data,
        record.resources,
    )

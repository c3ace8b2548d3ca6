"""One decoded CloudTrail record -> one OCSF 1.5.0 event. Pure: no I/O, no clock, no per-record logging.

Why OCSF: it is the schema SIEMs and data lakes (Security Lake among them) already query, so an analyst can join
CloudTrail with everything else without learning a bespoke layout. Four classes, chosen by the data table in
``classification.toml``: Authentication (3002) for sign-ins and STS credential issuance, Account Change (3001) for
IAM user and role changes, Group Management (3006) for IAM groups (those three in :mod:`.ocsf_iam`), API Activity
(6003) for everything else, with Create/Read/Update/Delete/Other from the API's verb. An activity OCSF has no
caption for is Other (99) with the eventName as its ``activity_name``. All carry the ``cloud`` profile
(``cloud``, ``api``).

The real actor: ``actor.user`` is the principal that signed the call; for an AssumedRole session its ``name`` is
the session name (an SSO user's e-mail, an instance id, a function name) while ``actor.session.issuer`` is the
role's ARN. Its ``uid`` is the ARN or nothing and ``uid_alt`` the principalId, so one principal keeps one uid
whichever fields a record has; temporary credentials' key is ``actor.session.credential_uid``; a federated /
Identity Center user shows in ``actor.idp``; an AWS service in ``actor.invoked_by``.
CloudTrail values OCSF has no attribute for (sourceIdentity, onBehalfOf, tlsDetails, ...) are kept under
``unmapped`` with their CloudTrail names, next to the classification; the whole record, byte for byte, is
``raw_data`` (a JSON string whose decoded value is the original text), unless ``sink.ocsf_raw_data`` is false.
``observables`` repeat, for pivoting, the source address, the caller's name, the account (and an IAM event's
subject and console host).

Events are msgspec Structs with ``omit_defaults``: absent values cost neither time nor bytes, and free-form
parts (requestParameters, responseElements, ...) stay ``Raw`` passthrough, never parsed.
"""

from __future__ import annotations

from codecs import utf_8_decode
from functools import lru_cache
from ipaddress import ip_address
from typing import Final

import msgspec
from msgspec import Raw
from msgspec.structs import replace

from ingester.codec import classification
from ingester.codec.classification import (
    ACCOUNT_CHANGE,
    API_ACTIVITY,
    AUTHENTICATION,
    GROUP_MANAGEMENT,
    INSIGHT_EVENT_TYPE,
    OCSF_KINDS,
    Classification,
)
from ingester.codec.cloudtrail import (
    NULL,
    RESOURCES,
    Record,
    SessionContext,
    UserIdentity,
    as_bool,
    lenient,
)
from ingester.codec.normalize import epoch_ms, failed, parse_epoch_ms, principal_name
from ingester.codec.ocsf_iam import USER_TYPE_IDS, account, account_change, authentication, email_of, group_management
from ingester.codec.ocsf_schema import (
    AWS,
    PRODUCT,
    PROFILES,
    Actor,
    Api,
    Cloud,
    Endpoint,
    Event,
    Feature,
    HttpRequest,
    IdentityExtras,
    Idp,
    Metadata,
    Observable,
    Product,
    Request,
    ResourceDetails,
    Response,
    Service,
    Session,
    Unmapped,
    Url,
    User,
)

OCSF_VERSION: Final = "1.5.0"
_ENCODE: Final = msgspec.json.Encoder().encode
_IDENTITY_CENTER: Final = "AWS IAM Identity Center"


def _raw(raw: Raw) -> Raw:
    """An explicit JSON null becomes the shared default, so ``omit_defaults`` drops it (identity check)."""
    return NULL if raw == NULL else raw


@lru_cache(maxsize=65_536)
def _endpoint(source: str, vpc_endpoint_id: str) -> Endpoint:
    """sourceIPAddress is an IP, or for calls AWS made, a service name ("ec2.amazonaws.com", "AWS Internal")."""
    try:
        return Endpoint(ip=str(ip_address(source)), uid=vpc_endpoint_id)
    except ValueError:
        domain = source if "." in source and " " not in source else ""
        return Endpoint(svc_name=source, domain=domain, uid=vpc_endpoint_id)


# OCSF ``observables``, written as bytes: the JSON of one Observable up to its value, for each attribute we point
# at. Building and encoding Observable Structs, or caching the arrays per (source, caller, account), made the OCSF
# encode 12-20% dearer on the benchmark's data, where those triples seldom repeat; an encoded string and a join
# cost a few hundred instructions.
def _prefix(name: str, caption: str, type_id: int) -> bytes:
    return _ENCODE(Observable(name, caption, type_id, ""))[: -len(b'""}')]


_SOURCE_IP: Final = _prefix("src_endpoint.ip", "IP Address", 2)
_SOURCE_HOST: Final = _prefix("src_endpoint.domain", "Hostname", 1)
_ACTOR_NAME: Final = _prefix("actor.user.name", "User Name", 4)
_ACCOUNT: Final = _prefix("cloud.account.uid", "Account UID", 35)
_USER_NAME: Final = _prefix("user.name", "User Name", 4)
_DESTINATION_HOST: Final = _prefix("dst_endpoint.hostname", "Hostname", 1)


def _observables(ip: str, domain: str, caller: str, account_uid: str, iam: dict[str, object] | None) -> Raw:
    """The values already mapped that an analyst pivots on, as a JSON array; NULL (left out) when none is set."""
    encode = _ENCODE
    found = [_SOURCE_IP + encode(ip) + b"}"] if ip else [_SOURCE_HOST + encode(domain) + b"}"] if domain else []
    if caller:
        found.append(_ACTOR_NAME + encode(caller) + b"}")
    if account_uid:
        found.append(_ACCOUNT + encode(account_uid) + b"}")
    if iam:
        user, destination = iam.get("user"), iam.get("dst_endpoint")
        if isinstance(user, User) and user.name:
            found.append(_USER_NAME + encode(user.name) + b"}")
        if isinstance(destination, Endpoint) and destination.hostname:
            found.append(_DESTINATION_HOST + encode(destination.hostname) + b"}")
    return Raw(b"[" + b",".join(found) + b"]") if found else NULL


@lru_cache(maxsize=64)  # eventCategory has four values (Management, Data, Insight, NetworkActivity)
def _product(event_category: str) -> Product:
    """``metadata.product.feature.name`` is the eventCategory, as Security Lake maps it: which of CloudTrail's
    event kinds the record is."""
    return replace(PRODUCT, feature=Feature(event_category)) if event_category else PRODUCT


# The documented categories without a call (an lru_cache hit costs a call; a dict hit does not).
_PRODUCTS: Final = {
    category: _product(category) for category in ("", "Management", "Data", "Insight", "NetworkActivity")
}


@lru_cache(maxsize=4_096)
def _service(name: str) -> Service:
    return Service(name=name)


def user_of(identity: UserIdentity) -> User:
    """The principal that signed the request, named as an analyst searches for it (:func:`principal_name`, the
    native format's choice too). ``uid`` is the ARN or nothing (never the principalId, which would give one
    principal two uids across records), ``uid_alt`` the principalId (an Identity Center user's id when there is
    none)."""
    kind = identity.type
    name, uid, uid_alt = principal_name(identity), identity.arn, identity.principal_id
    if identity.on_behalf_of is not None and kind == "IdentityCenterUser":
        uid_alt = uid_alt or identity.on_behalf_of.user_id
    return User(
        type=kind,
        type_id=USER_TYPE_IDS.get(kind, 99 if kind else 0),
        name=name,
        uid=uid,
        uid_alt=uid_alt,
        account=account(identity.account_id),
        credential_uid=identity.access_key_id or identity.credential_id,
        email_addr=email_of(name) if "@" in name else "",
    )


def actor_of(identity: UserIdentity) -> Actor:
    """User, session (issuer = the role or user that issued temporary credentials), identity provider, service."""
    session: Session | None = None
    idp: Idp | None = None
    context = identity.session_context
    if context is not None:
        issuer = context.session_issuer.arn if context.session_issuer is not None else ""
        attributes = context.attributes
        created = parse_epoch_ms(attributes.creation_date) if attributes is not None else 0
        mfa = as_bool(attributes.mfa_authenticated) if attributes is not None else None
        temporary = identity.access_key_id if identity.access_key_id.startswith("ASIA") else ""
        session = Session(
            uid=context.sign_in_session_arn, issuer=issuer, created_time=created, is_mfa=mfa, credential_uid=temporary
        )
        federation = context.web_id_federation_data
        if federation is not None and federation.federated_provider:
            idp = Idp(name=federation.federated_provider, protocol_name="OIDC")
    if identity.identity_provider:
        protocol = "SAML" if identity.type == "SAMLUser" else "OIDC" if identity.type == "WebIdentityUser" else ""
        idp = Idp(name=identity.identity_provider, protocol_name=protocol)
    if identity.on_behalf_of is not None:
        idp = Idp(name=_IDENTITY_CENTER, uid=identity.on_behalf_of.identity_store_arn)
    user = user_of(identity)
    return Actor(user=user if user != _NOBODY else None, session=session, idp=idp, invoked_by=identity.invoked_by)


def _identity_extras(identity: UserIdentity) -> IdentityExtras | None:
    context = identity.session_context
    if (
        (context is None or context == _EMPTY_CONTEXT)
        and identity.on_behalf_of is None
        and identity.in_scope_of is NULL
        and identity.invoked_by_delegate is None
    ):
        return None
    return IdentityExtras(context, identity.on_behalf_of, _raw(identity.in_scope_of), identity.invoked_by_delegate)


_EMPTY_CONTEXT: Final = SessionContext()
_STATUS: Final = ("", "Success", "Failure")  # by status_id (an Insights record's is 99, Other)
_NOBODY: Final = User()


def _resources(raw: Raw) -> list[ResourceDetails] | None:
    parsed = lenient(RESOURCES, raw)
    if not parsed:
        return None
    return [
        ResourceDetails(uid=item.arn or item.arn_prefix, type=item.type, owner=_owner(item.account_id))
        for item in parsed
    ]


@lru_cache(maxsize=4_096)  # one shared User per account: resources name a handful of accounts
def _owner(account_id: str) -> User | None:
    owner = account(account_id)
    return User(account=owner) if owner is not None else None


# class_uid, activity_id, class_name, category_uid, category_name, activity_name, type_uid, type_name, and the
# ingester classification: everything to_ocsf derives from the event's kind.
Kind = tuple[int, int, str, int, str, str, int, str, Classification]
_KINDS: dict[tuple[str, str, bool | str | None], Kind] = {}
_KINDS_LIMIT: Final = 65_536  # ~250 bytes an entry (16 MB at most); AWS has ~15k APIs, x 3 readOnly values


def _kind_of(record: Record) -> Kind:
    """Other (99) means OCSF has no caption for the activity; its activity_name is then the eventName, which
    says what happened (OCSF: "see the activity_name attribute, which contains a data source specific value")."""
    class_uid, activity_id = classification.ocsf_kind(record)
    class_name, category_uid, category, caption, type_uid, type_name = OCSF_KINDS[class_uid, activity_id]
    if activity_id == 99 and record.event_name:
        caption = record.event_name
    labels = classification.classify_record(record)
    return class_uid, activity_id, class_name, category_uid, category, caption, type_uid, type_name, labels


def kind(record: Record) -> Kind:
    """Memoized per (eventSource, eventName, readOnly), which decide both the OCSF class and activity and the
    classification of any record but an Insights one (those are rare and resolved each time)."""
    if record.insight_details is not None or record.event_type == INSIGHT_EVENT_TYPE:
        return _kind_of(record)
    key = (record.event_source, record.event_name, record.read_only)
    found = _KINDS.get(key)
    if found is None:
        if len(_KINDS) >= _KINDS_LIMIT:
            _KINDS.clear()  # bounded on adversarial input; refills from the hot set
        found = _KINDS[key] = _kind_of(record)
    return found


def to_ocsf(
    record: Record, raw: Raw, *, account_id: str, region: str, log_name: str = "", raw_data: bool = True
) -> Event:
    """``account_id``/``region`` are the shard's, used when the record lacks recipientAccountId/awsRegion;
    ``log_name`` names the log file (s3://bucket/key); without ``raw_data`` the event leaves out the original
    record (``sink.ocsf_raw_data = false``)."""
    class_uid, activity_id, class_name, category_uid, category, activity, type_uid, type_name, labels = kind(record)
    identity = record.user_identity
    actor = actor_of(identity)
    insight = record.insight_details
    source = insight.event_source if insight is not None else record.event_source
    operation = insight.event_name if insight is not None else record.event_name
    attributes: dict[str, object] | None = None
    if class_uid == API_ACTIVITY:
        resources, unmapped_resources = _resources(record.resources), NULL
    else:  # Identity & Access Management: no resources attribute; they stay, as CloudTrail wrote them, unmapped
        resources, unmapped_resources = None, _raw(record.resources)
        actor, attributes = _iam_attributes(record, class_uid, actor)
    if insight is None:
        status_id = 2 if failed(record) else 1
        status = _STATUS[status_id]
    else:  # an Insights record is no call: its status is Other, named by its state (Start, End)
        status_id, status = 99, insight.state or "Other"
    parameters = _raw(record.request_parameters)
    request = Request(record.request_id, parameters) if record.request_id else None
    response_data = _raw(record.response_elements)
    response = None
    if record.error_code or record.error_message or response_data is not NULL:
        response = Response(error=record.error_code, message=record.error_message, data=response_data)
    tls = record.tls_details
    host = tls.client_provided_host_header if tls is not None else ""
    http = HttpRequest(record.user_agent, Url(host) if host else None) if record.user_agent or host else None
    metadata = Metadata(
        version=OCSF_VERSION,
        product=_PRODUCTS.get(record.event_category) or _product(record.event_category),
        profiles=PROFILES,
        uid=record.event_id,
        event_code=record.event_name or record.event_type,
        correlation_uid=record.shared_event_id,
        original_time=record.event_time,
        log_name=log_name,
        log_provider="CloudTrail",
        log_version=record.event_version,
    )
    unmapped = Unmapped(  # positionally, in Unmapped's order
        labels,
        record.event_type,
        record.event_category,
        record.management_event,
        record.read_only,
        record.session_credential_from_console,
        record.vpc_endpoint_account_id,
        tls,
        NULL if request is not None else parameters,  # requestParameters: in api.request when it has a uid
        _raw(record.additional_event_data),
        _raw(record.service_event_details),
        insight,
        _raw(record.edge_device_details),
        _raw(record.addendum),
        _raw(record.event_context),
        _identity_extras(identity),
        unmapped_resources,
    )
    cloud_account = account(record.recipient_account_id or account_id)
    source_endpoint = _endpoint(record.source_ip_address, record.vpc_endpoint_id)
    observables = _observables(
        source_endpoint.ip,
        source_endpoint.domain,
        actor.user.name if actor.user is not None else "",
        cloud_account.uid if cloud_account is not None else "",
        attributes,
    )
    event = Event(  # positionally, in Event's order
        class_uid,
        class_name,
        category_uid,
        category,
        activity_id,
        activity,
        type_uid,
        type_name,
        1,  # severity_id
        "Informational",
        epoch_ms(record.event_time),  # time
        status_id,
        status,
        record.error_code,  # status_code
        record.error_message,  # status_detail
        metadata,
        Cloud(AWS, cloud_account, record.aws_region or region),
        Api(operation, _service(source) if source else None, record.api_version, request, response),
        actor,
        source_endpoint,
        http,  # http_request
        resources,
        utf_8_decode(raw, "replace", True)[0] if raw_data else "",  # str(memoryview(raw), ...) without the view
        len(raw) if raw_data else 0,  # raw_data_size
        unmapped,
        observables,
    )
    return event if attributes is None else replace(event, **attributes)


def _iam_attributes(record: Record, class_uid: int, actor: Actor) -> tuple[Actor, dict[str, object]]:
    """The attributes of the Identity & Access Management classes (:mod:`.ocsf_iam`) and the actor (an STS
    federation names its identity provider)."""
    if class_uid == AUTHENTICATION:
        logon = authentication(record, actor, _service(record.event_source))
        protocol_id, protocol = logon.auth_protocol
        attributes: dict[str, object] = {
            "dst_endpoint": logon.dst_endpoint,
            "user": logon.user,
            "session": logon.session,
            "auth_protocol_id": protocol_id,
            "auth_protocol": protocol,
            "is_mfa": logon.is_mfa,
            "service": logon.service,
        }
        return logon.actor, attributes
    if class_uid == ACCOUNT_CHANGE:
        user, result, policy = account_change(record, actor)
        return actor, {"user": user, "user_result": result, "policy": policy}
    if class_uid == GROUP_MANAGEMENT:
        group, member, privileges = group_management(record, actor)
        return actor, {"group": group, "user": member, "privileges": privileges}
    return actor, {}

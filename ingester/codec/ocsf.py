"""One decoded CloudTrail record -> one OCSF 1.5.0 event. Pure: no I/O, no clock, no per-record logging.

Why OCSF: it is the schema SIEMs and data lakes (Security Lake among them) already query, so an analyst can join
CloudTrail with everything else without learning a bespoke layout. Three classes, chosen by the data table in
``classification.toml``: Authentication (3002) for sign-ins, Account Change (3001) for IAM user and credential
changes, API Activity (6003) for everything else, with Create/Read/Update/Delete/Other from the API's verb.
All carry the ``cloud`` profile (``cloud``, ``api``).

The real actor: ``actor.user`` is the principal that signed the call; for an AssumedRole session its ``name`` is
the session name (an SSO user's e-mail, an instance id, a function name) while ``actor.session.issuer`` is the
role's ARN; a federated / Identity Center user shows in ``actor.idp``; an AWS service in ``actor.invoked_by``.
CloudTrail values OCSF has no attribute for (sourceIdentity, onBehalfOf, tlsDetails, ...) are kept under
``unmapped`` with their CloudTrail names, next to the classification; the whole record, byte for byte, is
``raw_data`` (a JSON string whose decoded value is the original text).

Events are msgspec Structs with ``omit_defaults``: absent values cost neither time nor bytes, and free-form
parts (requestParameters, responseElements, ...) stay ``Raw`` passthrough, never parsed.
"""

from __future__ import annotations

from codecs import utf_8_decode
from functools import lru_cache
from ipaddress import ip_address
from typing import Final

from msgspec import Raw

from ingester.codec import classification
from ingester.codec.classification import (
    ACCOUNT_CHANGE,
    AUTHENTICATION,
    INSIGHT_EVENT_TYPE,
    OCSF_KINDS,
    Classification,
)
from ingester.codec.cloudtrail import (
    IAM_REQUEST,
    IAM_RESPONSE,
    NULL,
    RESOURCES,
    RESULTS,
    SIGNIN_DETAILS,
    IamRequest,
    IamResponse,
    Record,
    SessionContext,
    UserIdentity,
    as_bool,
    lenient,
)
from ingester.codec.normalize import epoch_ms, parse_epoch_ms
from ingester.codec.ocsf_schema import (
    AWS,
    PRODUCT,
    PROFILES,
    Account,
    Actor,
    Api,
    Cloud,
    Endpoint,
    Event,
    HttpRequest,
    IdentityExtras,
    Idp,
    Metadata,
    Policy,
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
# userIdentity.type -> OCSF user type_id (1 User, 2 Admin, 3 System); other known types are 99 Other.
_USER_TYPE_IDS: Final = {"IAMUser": 1, "IdentityCenterUser": 1, "SAMLUser": 1, "Root": 2, "AWSService": 3}
_IDENTITY_CENTER: Final = "AWS IAM Identity Center"
_ROOT_USER_NAME: Final = "AWS ROOT USER"  # requestParameters.userName when the root user changes its own MFA


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


@lru_cache(maxsize=4_096)
def _service(name: str) -> Service:
    return Service(name=name)


@lru_cache(maxsize=65_536)
def _account(uid: str) -> Account | None:
    return Account(uid) if uid else None


def _tail(arn: str) -> str:
    """Last path element of an ARN with a path: .../assumed-role/Role/Session -> Session."""
    return arn.rsplit("/", 1)[-1] if arn.count("/") >= 2 or ":federated-user/" in arn else ""


def user_of(identity: UserIdentity) -> User:
    """The principal that signed the request, named as an analyst searches for it."""
    kind = identity.type
    name, uid, uid_alt = identity.user_name, identity.arn or identity.principal_id, ""
    if identity.arn:
        uid_alt = identity.principal_id
    if kind in ("AssumedRole", "FederatedUser"):
        # The session name: arn .../assumed-role/Role/Session, principalId "AROA...:Session" or "acct:Name".
        name = name or _tail(identity.arn) or identity.principal_id.partition(":")[2]
    elif kind == "Root":
        name = name or "root"
    elif kind == "AWSService":
        name = name or identity.invoked_by
    if identity.on_behalf_of is not None and kind == "IdentityCenterUser":
        uid, uid_alt = identity.on_behalf_of.user_id, ""
    return User(
        type=kind,
        type_id=_USER_TYPE_IDS.get(kind, 99 if kind else 0),
        name=name,
        uid=uid,
        uid_alt=uid_alt,
        account=_account(identity.account_id),
        credential_uid=identity.access_key_id or identity.credential_id,
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
        session = Session(uid=context.sign_in_session_arn or temporary, issuer=issuer, created_time=created, is_mfa=mfa)
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
_STATUS: Final = ("", "Success", "Failure")  # by status_id
_YES_NO: Final = {"yes": True, "no": False}
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
    account = _account(account_id)
    return User(account=account) if account is not None else None


# class_uid, activity_id, class_name, category_uid, category_name, activity_name, type_uid, type_name, and the
# ingester classification: everything to_ocsf derives from the event's kind.
Kind = tuple[int, int, str, int, str, str, int, str, Classification]
_KINDS: dict[tuple[str, str, bool | str | None], Kind] = {}
_KINDS_LIMIT: Final = 65_536  # ~250 bytes an entry (16 MB at most); AWS has ~15k APIs, x 3 readOnly values


def _kind_of(record: Record) -> Kind:
    class_uid, activity_id = classification.ocsf_kind(record)
    return (class_uid, activity_id, *OCSF_KINDS[class_uid, activity_id], classification.classify_record(record))


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


def _signin_failed(record: Record) -> bool:
    """Console sign-in failures carry no errorCode: responseElements says {"ConsoleLogin": "Failure"}."""
    results = lenient(RESULTS, record.response_elements)
    return results is not None and results.get(record.event_name) == "Failure"


def to_ocsf(record: Record, raw: Raw, *, account_id: str, region: str, log_name: str = "") -> Event:
    """``account_id``/``region`` are the shard's, used when the record lacks recipientAccountId/awsRegion;
    ``log_name`` names the log file (s3://bucket/key)."""
    class_uid, activity_id, class_name, category_uid, category, activity, type_uid, type_name, labels = kind(record)
    identity = record.user_identity
    actor = actor_of(identity)
    insight = record.insight_details
    source = insight.event_source if insight is not None else record.event_source
    operation = insight.event_name if insight is not None else record.event_name
    failed = bool(record.error_code) or (class_uid == AUTHENTICATION and _signin_failed(record))
    status_id = 0 if insight is not None else 2 if failed else 1
    parameters = _raw(record.request_parameters)
    request = Request(record.request_id, parameters) if record.request_id else None
    response_data = _raw(record.response_elements)
    response = None
    if record.error_code or record.error_message or response_data is not NULL:
        response = Response(error=record.error_code, message=record.error_message, data=response_data)
    tls = record.tls_details
    host = tls.client_provided_host_header if tls is not None else ""
    http = HttpRequest(record.user_agent, Url(host) if host else None) if record.user_agent or host else None
    user = user_result = policy = is_mfa = service = None
    if class_uid == AUTHENTICATION:
        user, service = actor.user, _service(record.event_source)
        details = lenient(SIGNIN_DETAILS, record.additional_event_data)
        is_mfa = _YES_NO.get(details.mfa_used.lower()) if details is not None else None  # AWS writes "YES" too
    elif class_uid == ACCOUNT_CHANGE:
        user, user_result, policy = _account_change(record, actor)
    metadata = Metadata(
        version=OCSF_VERSION,
        product=PRODUCT,
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
    )
    return Event(  # positionally, in Event's order
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
        _STATUS[status_id],
        record.error_code,  # status_code
        record.error_message,  # status_detail
        metadata,
        Cloud(AWS, _account(record.recipient_account_id or account_id), record.aws_region or region),
        Api(operation, _service(source) if source else None, record.api_version, request, response),
        actor,
        _endpoint(record.source_ip_address, record.vpc_endpoint_id),  # src_endpoint
        http,  # http_request
        user,
        user_result,
        policy,
        is_mfa,
        service,
        _resources(record.resources),
        utf_8_decode(raw, "replace", True)[0],  # raw_data: str(memoryview(raw), ...) without the memoryview
        len(raw),  # raw_data_size
        unmapped,
    )


def _account_change(record: Record, actor: Actor) -> tuple[User | None, User | None, Policy | None]:
    """The user whose account changed: requestParameters.userName, else the caller (ChangePassword, a root
    sign-in's PasswordUpdated); the created user or access key; the policy attached or detached."""
    request = lenient(IAM_REQUEST, record.request_parameters) or IamRequest()
    response = lenient(IAM_RESPONSE, record.response_elements) or IamResponse()
    account = _account(record.recipient_account_id) or (actor.user.account if actor.user is not None else None)
    user = actor.user
    if request.user_name and request.user_name != _ROOT_USER_NAME:
        user = User(type="IAMUser", name=request.user_name, account=account, credential_uid=request.access_key_id)
    result = None
    if response.user is not None:
        created = response.user
        result = User(type="IAMUser", name=created.user_name, uid=created.arn, uid_alt=created.user_id, account=account)
    elif response.access_key is not None:
        key = response.access_key
        result = User(type="IAMUser", name=key.user_name, account=account, credential_uid=key.access_key_id)
    policy = None
    if request.policy_arn or request.policy_name:
        policy = Policy(name=request.policy_name or request.policy_arn.rsplit("/", 1)[-1], uid=request.policy_arn)
    return user, result, policy

"""The Identity & Access Management classes of the OCSF mapping: who signed in or got credentials
(Authentication 3002), whose user or role changed (Account Change 3001), which IAM group changed (Group Management
3006). Pure, like :mod:`.ocsf`, which calls these for the records the classification table puts in these classes.

Why apart: these are the only mappings that read the free-form request and response (a role's ARN, the new
credentials, a group's name), so each parses the few keys it needs with a lenient view. Those records are a
few in a thousand; the hot path (API Activity) never comes here.

Where the subject of an event comes from, as Amazon Security Lake maps it where that is right (docs/ocsf.md, "Event
schema (OCSF)"): STS role assumption is a Logon of the role session (``user`` the role, named by its session
name; ``session`` the assumed-role ARN, the temporary key and its expiry; ``actor`` the caller); an IAM change
names the user or role in the request (the created one's ids from the response); a group change names the group,
the member and the policy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from msgspec import Struct
from msgspec.structs import replace

from ingester.codec.cloudtrail import (
    IAM_REQUEST,
    IAM_RESPONSE,
    SIGNIN_DETAILS,
    STS_REQUEST,
    STS_RESPONSE,
    IamRequest,
    IamResponse,
    Record,
    StsRequest,
    StsResponse,
    lenient,
)
from ingester.codec.normalize import parse_epoch_ms
from ingester.codec.ocsf_schema import Account, Actor, Endpoint, Group, Idp, Policy, Service, Session, User

# userIdentity.type -> OCSF user type_id (1 User, 2 Admin, 3 System); other known types are 99 Other.
USER_TYPE_IDS: Final = {"IAMUser": 1, "IdentityCenterUser": 1, "SAMLUser": 1, "Root": 2, "AWSService": 3}
ROOT_USER_NAME: Final = "AWS ROOT USER"  # requestParameters.userName when the root user changes its own MFA
_YES_NO: Final = {"yes": True, "no": False}
_NO_IAM_REQUEST: Final = IamRequest()
_NO_IAM_RESPONSE: Final = IamResponse()
_NO_STS_REQUEST: Final = StsRequest()
_NO_STS_RESPONSE: Final = StsResponse()
_NO_SESSION: Final = Session()
# Account changes whose subject is the caller when the request names no user: IAM acts on the signing user
# ("if you do not specify a user name, IAM determines the user name implicitly based on the access key"), and the
# root user's own changes in the console. Any other request that names no user or role (account-wide settings,
# virtual MFA devices, instance profiles, or a failed call logged without its parameters) names only the account:
# saying the caller changed itself would be wrong.
_CALLER_BY_DEFAULT: Final = frozenset({
    "ChangePassword", "CreateAccessKey", "DeleteAccessKey", "UpdateAccessKey", "UploadSigningCertificate",
    "PasswordUpdated", "EmailUpdated", "AccountNameUpdated",
})  # fmt: skip
_SAML: Final = (5, "SAML")  # OCSF auth_protocol_id, auth_protocol
_OPENID: Final = (4, "OpenID")
_NO_PROTOCOL: Final = (0, "")
_MONTHS: Final = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11,
    "Dec": 12,
}  # fmt: skip
_HALF_DAY: Final = {"AM": 0, "PM": 12}


@lru_cache(maxsize=65_536)
def account(uid: str) -> Account | None:
    return Account(uid) if uid else None


def _account_of(record: Record, actor: Actor) -> Account | None:
    """The account an IAM call changed: the record's, else the caller's."""
    return account(record.recipient_account_id) or (actor.user.account if actor.user is not None else None)


def email_of(name: str) -> str:
    """A user name that is an e-mail address (an SSO user's session name, a SAML subject) is also the user's
    ``email_addr``, where OCSF queries for a person look."""
    at = name.find("@")
    return name if at > 0 and "." in name[at + 2 : -1] and " " not in name else ""


def target(kind: str, name: str, owner: Account | None, uid: str = "", uid_alt: str = "", key: str = "") -> User:
    """A user or role an IAM or STS call acts on, typed like a userIdentity of that kind."""
    return User(
        type=kind,
        type_id=USER_TYPE_IDS.get(kind, 99),
        name=name,
        uid=uid,
        uid_alt=uid_alt,
        account=owner,
        credential_uid=key,
        email_addr=email_of(name) if "@" in name else "",
    )


class Logon(Struct, frozen=True, gc=False):
    """What an Authentication event says beyond the common attributes. ``actor`` is the caller, sometimes with
    the identity provider the response names."""

    actor: Actor
    user: User | None
    service: Service | None
    session: Session | None = None
    dst_endpoint: Endpoint | None = None
    is_mfa: bool | None = None
    auth_protocol: tuple[int, str] = _NO_PROTOCOL


def authentication(record: Record, actor: Actor, service: Service | None) -> Logon:
    if record.event_source == "sts.amazonaws.com":
        return _credentials(record, actor, service)
    return _sign_in(record, actor, service)


def _sign_in(record: Record, actor: Actor, service: Service | None) -> Logon:
    """A console or Identity Center sign-in: the signer is the actor; additionalEventData may name them
    (UserName), say whether MFA was used and where they signed in to (LoginTo)."""
    user, is_mfa, destination = actor.user, None, None
    details = lenient(SIGNIN_DETAILS, record.additional_event_data)
    if details is not None:
        is_mfa = _YES_NO.get(details.mfa_used.lower())  # AWS writes "YES" too
        if details.user_name:
            user = replace(user or User(), name=details.user_name, email_addr=email_of(details.user_name))
            if actor.user is None or not actor.user.name:
                actor = replace(actor, user=user)
        if details.login_to:
            destination = _login_endpoint(details.login_to)
    return Logon(actor, user, service, None, destination, is_mfa, _NO_PROTOCOL)


@lru_cache(maxsize=1_024)
def _login_endpoint(login_to: str) -> Endpoint:
    """The console or portal signed in to. The query (a one-time state token) stays in additionalEventData."""
    base = login_to.partition("?")[0]
    scheme, sep, rest = base.partition("://")
    return Endpoint(svc_name=base, hostname=rest.partition("/")[0] if sep and scheme else "")


def _credentials(record: Record, actor: Actor, service: Service | None) -> Logon:
    """AssumeRole*, GetFederationToken, GetSessionToken: the user is the principal the credentials are for, the
    session their temporary key and expiry; the actor is the caller. Failed calls still name whom they tried."""
    request = lenient(STS_REQUEST, record.request_parameters) or _NO_STS_REQUEST
    response = lenient(STS_RESPONSE, record.response_elements) or _NO_STS_RESPONSE
    credentials = response.credentials
    key = credentials.access_key_id if credentials is not None else ""
    expires = _expiration_ms(credentials.expiration) if credentials is not None else 0
    caller = actor.user.uid if actor.user is not None else ""
    is_mfa = True if request.serial_number else None  # an MFA code came with the request
    protocol = _NO_PROTOCOL
    if record.event_name == "GetSessionToken":  # the caller's own temporary credentials
        user = actor.user
        session = Session(issuer=caller, credential_uid=key, expiration_time=expires, is_mfa=is_mfa)
    elif record.event_name == "GetFederationToken":
        federated = response.federated_user
        arn, uid_alt = (federated.arn, federated.federated_user_id) if federated is not None else ("", "")
        user = target("FederatedUser", request.name, _account_of(record, actor), arn, uid_alt)
        session = Session(uid=arn, uid_alt=uid_alt, issuer=caller, credential_uid=key, expiration_time=expires)
    else:  # AssumeRole, AssumeRoleWithSAML, AssumeRoleWithWebIdentity
        assumed = response.assumed_role_user
        session_arn, session_id = (assumed.arn, assumed.assumed_role_id) if assumed is not None else ("", "")
        role = request.role_arn
        owner = account(role.split(":", 5)[4]) if role.count(":") >= 5 else None
        user = target("AssumedRole", request.role_session_name, owner, role, session_id.partition(":")[0])
        session = Session(
            uid=session_arn,
            uid_alt=session_id,
            issuer=role,
            credential_uid=key,
            expiration_time=expires,
            is_mfa=is_mfa,
        )
        if record.event_name == "AssumeRoleWithSAML":
            provider = request.principal_arn
            name = provider.rpartition("saml-provider/")[2] if "saml-provider/" in provider else provider
            idp = Idp(name=name, uid=provider, protocol_name="SAML", issuer=response.issuer)
            actor, protocol = replace(actor, idp=idp), _SAML
        elif record.event_name == "AssumeRoleWithWebIdentity":
            name = response.provider or (actor.idp.name if actor.idp is not None else "")
            actor, protocol = replace(actor, idp=Idp(name=name, protocol_name="OIDC")), _OPENID
    issued = session if session != _NO_SESSION else None  # a failed call's: nothing issued, nothing named
    return Logon(actor, user, service, issued, None, is_mfa, protocol)


def _expiration_ms(text: str) -> int:
    """CloudTrail writes credential expiry in UTC as "Mar 23, 2016 2:39:57 AM" (older records) or "Nov 30, 2024,
    8:43:17 PM". Parsed by hand, the day from a cache: ``strptime`` took ~7 us, most of an STS event's mapping,
    and role assumption is among the commonest events."""
    rest, _, half = text.rpartition(" ")
    date, _, clock = rest.rpartition(" ")
    day, offset = _day_ms(date), _HALF_DAY.get(half)
    hour, _, rest = clock.partition(":")
    minute, _, second = rest.partition(":")
    if day is None or offset is None or not (hour.isdecimal() and minute.isdecimal() and second.isdecimal()):
        return parse_epoch_ms(text)  # ISO 8601, should AWS ever write it; 0 for anything else
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if not (1 <= hours <= 12 and minutes < 60 and seconds < 60):
        return 0
    return day + ((hours % 12 + offset) * 3600 + minutes * 60 + seconds) * 1000


@lru_cache(maxsize=1_024)
def _day_ms(date: str) -> int | None:
    """The date part, "Mar 23, 2016" or "Nov 30, 2024,", -> its midnight UTC in epoch ms; None for anything else."""
    month, _, rest = date.partition(" ")
    day, _, year = rest.rstrip(",").partition(", ")
    number = _MONTHS.get(month)
    if number is None or not (day.isdecimal() and year.isdecimal()):
        return None
    try:
        return int(datetime(int(year), number, int(day), tzinfo=UTC).timestamp() * 1000)
    except ValueError:  # Feb 30
        return None


def account_change(record: Record, actor: Actor) -> tuple[User, User | None, Policy | None]:
    """The user or role whose account changed: the created one (with its ARN and id from the response), else
    requestParameters.userName or roleName, else the caller for the calls that act on it by default
    (ChangePassword, its own access keys, a root's PasswordUpdated or MFA), else only the account; the result
    (the created user or role, the new access key, a rename's new name); the policy attached or detached (a
    permissions boundary is a policy too)."""
    request = lenient(IAM_REQUEST, record.request_parameters) or _NO_IAM_REQUEST
    response = lenient(IAM_RESPONSE, record.response_elements) or _NO_IAM_RESPONSE
    owner = _account_of(record, actor)
    result = None
    if response.user is not None:
        created = response.user
        result = target("IAMUser", created.user_name or request.user_name, owner, created.arn, created.user_id)
    elif response.role is not None:
        role = response.role
        result = target("Role", role.role_name or request.role_name, owner, role.arn, role.role_id)
    elif response.access_key is not None:
        new_key = response.access_key
        result = target("IAMUser", new_key.user_name, owner, key=new_key.access_key_id)
    if result is not None and not result.credential_uid:
        user = result
    elif request.user_name and request.user_name != ROOT_USER_NAME:
        user = target("IAMUser", request.user_name, owner, key=request.access_key_id)
    elif request.role_name:
        user = target("Role", request.role_name, owner)
    elif actor.user is not None and (record.event_name in _CALLER_BY_DEFAULT or request.user_name):
        user = actor.user  # request.user_name is ROOT_USER_NAME: the root user's own MFA device
    else:
        user = User(account=owner)
    if request.new_user_name:
        result = target("IAMUser", request.new_user_name, owner)
    return user, result, _policy(request)


def _policy(request: IamRequest) -> Policy | None:
    arn = request.policy_arn or request.permissions_boundary
    if not arn and not request.policy_name:
        return None
    return Policy(name=request.policy_name or arn.rsplit("/", 1)[-1], uid=arn)


def group_management(record: Record, actor: Actor) -> tuple[Group, User | None, tuple[str, ...] | None]:
    """The IAM group (its ARN when the response names it: CreateGroup), the member added or removed, and the
    policy attached or detached as the group's privilege (its ARN, or an inline policy's name)."""
    request = lenient(IAM_REQUEST, record.request_parameters) or _NO_IAM_REQUEST
    response = lenient(IAM_RESPONSE, record.response_elements) or _NO_IAM_RESPONSE
    created = response.group
    group = Group(
        name=request.group_name or (created.group_name if created is not None else ""),
        uid=created.arn if created is not None else "",
    )
    user = None
    if request.user_name:
        user = target("IAMUser", request.user_name, _account_of(record, actor))
    privilege = request.policy_arn or request.policy_name
    return group, user, (privilege,) if privilege else None

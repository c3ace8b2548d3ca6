"""CloudTrail wire format as msgspec Structs: a *view* that declares only what normalization reads.

Why a view: msgspec skips undeclared fields at C speed, so the typed decode costs little more than validating
JSON. Free-form parts (requestParameters, responseElements, ...) stay ``msgspec.Raw``: passed through byte for
byte, never parsed. Fields the docs show in more than one shape get a union. Every field has a default,
because CloudTrail adds fields over eventVersions (1.0 to 1.11 so far) and old records lack new ones; unknown
future fields are ignored here and survive in the raw record kept by the decoder.

The shapes follow AWS's "CloudTrail record contents" and "userIdentity element" pages: every userIdentity
type (Root, IAMUser, AssumedRole, Role, FederatedUser, Directory, AWSAccount, AWSService, IdentityCenterUser,
SAMLUser, WebIdentityUser, Unknown), management / data / network-activity events, and Insights records, whose
eventSource and eventName live inside ``insightDetails``. Flags the docs call "a string with a value of true
or false" are typed ``str | bool`` so either spelling decodes. Structs that the OCSF mapping re-emits under
``unmapped`` are ``omit_defaults`` (an encoding-only option) so they come out as compact as CloudTrail wrote them.
"""

from __future__ import annotations

from typing import Final, TypeVar

import msgspec
from msgspec import Raw, Struct, field

NULL = Raw(b"null")


class SessionIssuer(Struct, frozen=True, gc=False, omit_defaults=True):
    type: str = ""
    principal_id: str = field(default="", name="principalId")
    arn: str = ""
    account_id: str = field(default="", name="accountId")
    user_name: str = field(default="", name="userName")


class SessionAttributes(Struct, frozen=True, gc=False, omit_defaults=True):
    # "true"/"false" in the docs; tolerate a JSON bool.
    mfa_authenticated: str | bool = field(default="", name="mfaAuthenticated")
    # ISO 8601, extended ("2024-04-30T23:15:03Z") or basic ("20131102T010628Z") notation.
    creation_date: str = field(default="", name="creationDate")


class WebIdFederationData(Struct, frozen=True, gc=False, omit_defaults=True):
    """Present (often as ``{}``) on sessions from web identity federation; names the identity provider."""

    federated_provider: str = field(default="", name="federatedProvider")
    attributes: Raw = NULL


class SessionContext(Struct, frozen=True, gc=False, omit_defaults=True):
    session_issuer: SessionIssuer | None = field(default=None, name="sessionIssuer")
    attributes: SessionAttributes | None = None
    source_identity: str = field(default="", name="sourceIdentity")
    web_id_federation_data: WebIdFederationData | None = field(default=None, name="webIdFederationData")
    # The sign-in session behind the credentials (arn:aws:signin:<region>:<account>:session/<uuid>).
    sign_in_session_arn: str = field(default="", name="signInSessionArn")
    # "1.0" (IMDSv1) or "2.0" (IMDSv2) for EC2 instance-profile credentials.
    ec2_role_delivery: str = field(default="", name="ec2RoleDelivery")
    # true for a session from sts:AssumeRoot (a privileged task on a member account's root user).
    assumed_root: str | bool = field(default="", name="assumedRoot")


class OnBehalfOf(Struct, frozen=True, gc=False, omit_defaults=True):
    """The IAM Identity Center user a call was made for: the human behind an IdentityCenterUser or an
    identity-enhanced role session."""

    user_id: str = field(default="", name="userId")
    identity_store_arn: str = field(default="", name="identityStoreArn")


class InvokedByDelegate(Struct, frozen=True, gc=False, omit_defaults=True):
    """A product provider acting with temporary delegated access: its account."""

    account_id: str = field(default="", name="accountId")


class UserIdentity(Struct, frozen=True, gc=False):
    type: str = ""
    principal_id: str = field(default="", name="principalId")
    arn: str = ""
    account_id: str = field(default="", name="accountId")
    access_key_id: str = field(default="", name="accessKeyId")
    user_name: str = field(default="", name="userName")
    invoked_by: str = field(default="", name="invokedBy")
    identity_provider: str = field(default="", name="identityProvider")
    # Bearer-token calls (IAM Identity Center access tokens) carry this instead of an access key.
    credential_id: str = field(default="", name="credentialId")
    session_context: SessionContext | None = field(default=None, name="sessionContext")
    on_behalf_of: OnBehalfOf | None = field(default=None, name="onBehalfOf")
    # Lambda / ECS ... credentials: which resource they were issued to. Passed through.
    in_scope_of: Raw = field(default=NULL, name="inScopeOf")
    invoked_by_delegate: InvokedByDelegate | None = field(default=None, name="invokedByDelegate")


EMPTY_IDENTITY = UserIdentity()


class TlsDetails(Struct, frozen=True, gc=False, omit_defaults=True):
    tls_version: str = field(default="", name="tlsVersion")
    cipher_suite: str = field(default="", name="cipherSuite")
    client_provided_host_header: str = field(default="", name="clientProvidedHostHeader")
    key_exchange: str = field(default="", name="keyExchange")


class Resource(Struct, frozen=True, gc=False):
    """One element of ``resources``; S3 data events on a prefix name it with ``ARNPrefix`` instead of ``ARN``."""

    arn: str = field(default="", name="ARN")
    arn_prefix: str = field(default="", name="ARNPrefix")
    account_id: str = field(default="", name="accountId")
    type: str = ""


class InsightDetails(Struct, frozen=True, gc=False, omit_defaults=True):
    """The body of a CloudTrail Insights record (eventType ``AwsCloudTrailInsight``): which API's call or error
    rate became unusual, and the statistics, passed through."""

    state: str = ""
    event_source: str = field(default="", name="eventSource")
    event_name: str = field(default="", name="eventName")
    error_code: str = field(default="", name="errorCode")
    insight_type: str = field(default="", name="insightType")
    insight_context: Raw = field(default=NULL, name="insightContext")


class RecordHead(Struct, frozen=True, gc=False):
    """The fields of a record that every output format reads: its key (eventID, recipientAccountId), time,
    routing headers, OCSF class and ``[[routes]]`` conditions. The raw format decodes only these (the record is
    sent as written): msgspec skips the other keys without building them, ~1 us instead of ~3 us per record."""

    event_time: str = field(default="", name="eventTime")
    event_source: str = field(default="", name="eventSource")
    event_name: str = field(default="", name="eventName")
    aws_region: str = field(default="", name="awsRegion")
    error_code: str = field(default="", name="errorCode")
    event_id: str = field(default="", name="eventID")
    event_type: str = field(default="", name="eventType")
    event_category: str = field(default="", name="eventCategory")
    read_only: bool | str | None = field(default=None, name="readOnly")
    recipient_account_id: str = field(default="", name="recipientAccountId")
    insight_details: InsightDetails | None = field(default=None, name="insightDetails")


class Record(RecordHead, frozen=True, gc=False):
    """One element of a log file's ``Records`` array (the head's fields, then the rest)."""

    event_version: str = field(default="", name="eventVersion")
    user_identity: UserIdentity = field(default=EMPTY_IDENTITY, name="userIdentity")
    source_ip_address: str = field(default="", name="sourceIPAddress")
    user_agent: str = field(default="", name="userAgent")
    error_message: str = field(default="", name="errorMessage")
    request_parameters: Raw = field(default=NULL, name="requestParameters")
    response_elements: Raw = field(default=NULL, name="responseElements")
    additional_event_data: Raw = field(default=NULL, name="additionalEventData")
    service_event_details: Raw = field(default=NULL, name="serviceEventDetails")
    request_id: str = field(default="", name="requestID")
    api_version: str = field(default="", name="apiVersion")
    management_event: bool | None = field(default=None, name="managementEvent")
    shared_event_id: str = field(default="", name="sharedEventID")
    vpc_endpoint_id: str = field(default="", name="vpcEndpointId")
    vpc_endpoint_account_id: str = field(default="", name="vpcEndpointAccountId")
    # Kept Raw so a malformed list never rejects the record; the OCSF mapping decodes it leniently.
    resources: Raw = NULL
    tls_details: TlsDetails | None = field(default=None, name="tlsDetails")
    session_credential_from_console: str | bool = field(default="", name="sessionCredentialFromConsole")
    edge_device_details: Raw = field(default=NULL, name="edgeDeviceDetails")
    addendum: Raw = NULL
    event_context: Raw = field(default=NULL, name="eventContext")


class SigninDetails(Struct, frozen=True, gc=False):
    """additionalEventData of a console or Identity Center sign-in (the other keys stay in the Raw)."""

    mfa_used: str = field(default="", name="MFAUsed")
    user_name: str = field(default="", name="UserName")  # who signed in, when userIdentity does not say
    login_to: str = field(default="", name="LoginTo")  # the console or portal URL signed in to


class IamRequest(Struct, frozen=True, gc=False):
    """requestParameters of the IAM user / role / group APIs that the OCSF IAM mappings read."""

    user_name: str = field(default="", name="userName")
    new_user_name: str = field(default="", name="newUserName")  # UpdateUser's rename
    role_name: str = field(default="", name="roleName")
    group_name: str = field(default="", name="groupName")
    policy_arn: str = field(default="", name="policyArn")
    policy_name: str = field(default="", name="policyName")
    # Put{User,Role}PermissionsBoundary: the managed policy's ARN.
    permissions_boundary: str = field(default="", name="permissionsBoundary")
    access_key_id: str = field(default="", name="accessKeyId")


class IamUser(Struct, frozen=True, gc=False):
    user_name: str = field(default="", name="userName")
    user_id: str = field(default="", name="userId")
    arn: str = ""
    access_key_id: str = field(default="", name="accessKeyId")


class IamRole(Struct, frozen=True, gc=False):
    role_name: str = field(default="", name="roleName")
    role_id: str = field(default="", name="roleId")
    arn: str = ""


class IamGroup(Struct, frozen=True, gc=False):
    group_name: str = field(default="", name="groupName")
    group_id: str = field(default="", name="groupId")
    arn: str = ""


class IamResponse(Struct, frozen=True, gc=False):
    """responseElements of CreateUser / CreateAccessKey / CreateRole / CreateServiceLinkedRole / CreateGroup."""

    user: IamUser | None = None
    access_key: IamUser | None = field(default=None, name="accessKey")
    role: IamRole | None = None
    group: IamGroup | None = None


class StsRequest(Struct, frozen=True, gc=False):
    """requestParameters of the STS calls that issue credentials (AssumeRole*, GetFederationToken,
    GetSessionToken)."""

    role_arn: str = field(default="", name="roleArn")
    role_session_name: str = field(default="", name="roleSessionName")
    principal_arn: str = field(default="", name="principalArn")  # AssumeRoleWithSAML: the SAML provider
    name: str = ""  # GetFederationToken: the federated user's name
    serial_number: str = field(default="", name="serialNumber")  # the MFA device, when MFA was used


class Credentials(Struct, frozen=True, gc=False):
    access_key_id: str = field(default="", name="accessKeyId")
    # "Mar 23, 2016 2:39:57 AM" or "Nov 30, 2024, 8:43:17 PM" (UTC), not ISO 8601.
    expiration: str = ""


class AssumedRoleUser(Struct, frozen=True, gc=False):
    assumed_role_id: str = field(default="", name="assumedRoleId")
    arn: str = ""


class FederatedUser(Struct, frozen=True, gc=False):
    federated_user_id: str = field(default="", name="federatedUserId")
    arn: str = ""


class StsResponse(Struct, frozen=True, gc=False):
    """responseElements of the same calls: the credentials and the principal they belong to."""

    credentials: Credentials | None = None
    assumed_role_user: AssumedRoleUser | None = field(default=None, name="assumedRoleUser")
    federated_user: FederatedUser | None = field(default=None, name="federatedUser")
    provider: str = ""  # AssumeRoleWithWebIdentity: the OIDC provider
    issuer: str = ""  # AssumeRoleWithSAML: the SAML assertion's issuer


_T = TypeVar("_T")
# What decoding bytes can raise: msgspec's errors, RecursionError past the nesting limit, and (never seen, but
# they are what a C extension raises for a bad value) ValueError (UnicodeError among them) and OverflowError.
# MemoryError is left out on purpose: it says nothing about the bytes, and retrying may succeed.
DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, ValueError, OverflowError)
# Lenient views of the few free-form parts a mapping reads: a shape they do not fit is left unmapped, never an
# error (the record already decoded; its bytes are kept whole).
RESOURCES = msgspec.json.Decoder(list[Resource])
# Sign-in outcomes: responseElements {"ConsoleLogin": "Failure"}, serviceEventDetails {"CredentialVerification": ...}
RESULTS = msgspec.json.Decoder(dict[str, object])
SIGNIN_DETAILS = msgspec.json.Decoder(SigninDetails)
IAM_REQUEST = msgspec.json.Decoder(IamRequest)
IAM_RESPONSE = msgspec.json.Decoder(IamResponse)
STS_REQUEST = msgspec.json.Decoder(StsRequest)
STS_RESPONSE = msgspec.json.Decoder(StsResponse)


def lenient(decoder: msgspec.json.Decoder[_T], raw: Raw) -> _T | None:
    """Decode a Raw part with one of the views above; None when it is null or of another shape, or nested too
    deeply to decode (the record itself decoded, one level shallower, so this depends on the stack's depth)."""
    if raw == NULL:
        return None
    try:
        return decoder.decode(raw)
    except DECODE_ERRORS:  # ValidationError among them
        return None


_FLAGS: Final = {"true": True, "false": False}


def as_bool(value: str | bool | None) -> bool | None:
    """CloudTrail writes flags as JSON booleans or as "true"/"false" strings; anything else is unknown."""
    if isinstance(value, bool) or value is None:
        return value
    return _FLAGS.get(value.lower())


class LogFile(Struct, frozen=True):
    """The envelope. Records stay Raw so one bad record cannot sink its neighbours, and so the original bytes
    of each record are available for passthrough without re-encoding."""

    records: list[Raw] = field(name="Records")

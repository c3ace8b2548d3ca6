"""CloudTrail wire format as msgspec Structs: a *view* that declares only what normalization reads.

Why a view: msgspec skips undeclared fields at C speed, so the typed decode costs little more than validating
JSON. Free-form parts (requestParameters, responseElements, ...) stay ``msgspec.Raw``: passed through byte for
byte, never parsed. Fields the docs show in more than one shape get a union. Every field has a default,
because CloudTrail adds fields over eventVersions and old records lack new ones; unknown future fields are
ignored here and survive in the raw record kept by the decoder.
"""

from __future__ import annotations

from msgspec import Raw, Struct, field

NULL = Raw(b"null")


class SessionIssuer(Struct, frozen=True, gc=False):
    type: str = ""
    principal_id: str = field(default="", name="principalId")
    arn: str = ""
    account_id: str = field(default="", name="accountId")
    user_name: str = field(default="", name="userName")


class SessionAttributes(Struct, frozen=True, gc=False):
    # "true"/"false" in the docs; tolerate a JSON bool.
    mfa_authenticated: str | bool = field(default="", name="mfaAuthenticated")
    creation_date: str = field(default="", name="creationDate")


class SessionContext(Struct, frozen=True, gc=False):
    session_issuer: SessionIssuer | None = field(default=None, name="sessionIssuer")
    attributes: SessionAttributes | None = None
    source_identity: str = field(default="", name="sourceIdentity")
    web_id_federation_data: Raw = field(default=NULL, name="webIdFederationData")


class UserIdentity(Struct, frozen=True, gc=False):
    type: str = ""
    principal_id: str = field(default="", name="principalId")
    arn: str = ""
    account_id: str = field(default="", name="accountId")
    access_key_id: str = field(default="", name="accessKeyId")
    user_name: str = field(default="", name="userName")
    invoked_by: str = field(default="", name="invokedBy")
    identity_provider: str = field(default="", name="identityProvider")
    credential_id: str = field(default="", name="credentialId")
    session_context: SessionContext | None = field(default=None, name="sessionContext")
    on_behalf_of: Raw = field(default=NULL, name="onBehalfOf")


EMPTY_IDENTITY = UserIdentity()


class Record(Struct, frozen=True, gc=False):
    """One element of a log file's ``Records`` array."""

    event_version: str = field(default="", name="eventVersion")
    user_identity: UserIdentity = field(default=EMPTY_IDENTITY, name="userIdentity")
    event_time: str = field(default="", name="eventTime")
    event_source: str = field(default="", name="eventSource")
    event_name: str = field(default="", name="eventName")
    aws_region: str = field(default="", name="awsRegion")
    source_ip_address: str = field(default="", name="sourceIPAddress")
    user_agent: str = field(default="", name="userAgent")
    error_code: str = field(default="", name="errorCode")
    error_message: str = field(default="", name="errorMessage")
    request_parameters: Raw = field(default=NULL, name="requestParameters")
    response_elements: Raw = field(default=NULL, name="responseElements")
    additional_event_data: Raw = field(default=NULL, name="additionalEventData")
    service_event_details: Raw = field(default=NULL, name="serviceEventDetails")
    request_id: str = field(default="", name="requestID")
    event_id: str = field(default="", name="eventID")
    event_type: str = field(default="", name="eventType")
    event_category: str = field(default="", name="eventCategory")
    read_only: bool | str | None = field(default=None, name="readOnly")
    management_event: bool | None = field(default=None, name="managementEvent")
    recipient_account_id: str = field(default="", name="recipientAccountId")
    shared_event_id: str = field(default="", name="sharedEventID")
    vpc_endpoint_id: str = field(default="", name="vpcEndpointId")
    resources: Raw = NULL


class LogFile(Struct, frozen=True):
    """The envelope. Records stay Raw so one bad record cannot sink its neighbours, and so the original bytes
    of each record are available for passthrough without re-encoding."""

    records: list[Raw] = field(name="Records")

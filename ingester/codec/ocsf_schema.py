"""The OCSF 1.5.0 event shapes ingester writes: msgspec Structs, one per OCSF object, for :mod:`.ocsf` to fill.

Only the attributes ingester fills are declared; ``omit_defaults`` keeps absent ones out of the output. Kept
apart from the mapping so each module stays readable (the shapes are data, the mapping is decisions).
"""

from __future__ import annotations

from typing import Final

from msgspec import Raw, Struct, field

from ingester.codec.classification import Classification
from ingester.codec.cloudtrail import NULL, InsightDetails, InvokedByDelegate, OnBehalfOf, SessionContext, TlsDetails


class Feature(Struct, frozen=True, gc=False):
    name: str


class Product(Struct, frozen=True, gc=False, omit_defaults=True):
    name: str
    vendor_name: str
    feature: Feature | None = None  # CloudTrail's eventCategory: Management, Data, Insight, NetworkActivity


class Metadata(Struct, frozen=True, gc=False, omit_defaults=True):
    version: str
    product: Product
    profiles: tuple[str, ...]
    uid: str = ""
    event_code: str = ""
    correlation_uid: str = ""
    original_time: str = ""
    log_name: str = ""
    log_provider: str = ""
    log_version: str = ""


class Account(Struct, frozen=True, gc=False):
    uid: str


class Cloud(Struct, frozen=True, gc=False, omit_defaults=True):
    provider: str
    account: Account | None = None
    region: str = ""


class User(Struct, frozen=True, gc=False, omit_defaults=True):
    type: str = ""
    type_id: int = 0
    name: str = ""
    uid: str = ""
    uid_alt: str = ""
    account: Account | None = None
    credential_uid: str = ""
    email_addr: str = ""


class Session(Struct, frozen=True, gc=False, omit_defaults=True):
    uid: str = ""
    uid_alt: str = ""
    issuer: str = ""
    created_time: int = 0
    expiration_time: int = 0
    is_mfa: bool | None = None
    credential_uid: str = ""  # the temporary access key (ASIA...) of the session


class Idp(Struct, frozen=True, gc=False, omit_defaults=True):
    name: str = ""
    uid: str = ""
    protocol_name: str = ""
    issuer: str = ""


class Actor(Struct, frozen=True, gc=False, omit_defaults=True):
    user: User | None = None
    session: Session | None = None
    idp: Idp | None = None
    invoked_by: str = ""


class Service(Struct, frozen=True, gc=False, omit_defaults=True):
    name: str = ""


class Request(Struct, frozen=True, gc=False, omit_defaults=True):
    uid: str
    data: Raw = NULL


class Response(Struct, frozen=True, gc=False, omit_defaults=True):
    error: str = ""
    message: str = ""
    data: Raw = NULL


class Api(Struct, frozen=True, gc=False, omit_defaults=True):
    operation: str
    service: Service | None = None
    version: str = ""
    request: Request | None = None
    response: Response | None = None


class Endpoint(Struct, frozen=True, gc=False, omit_defaults=True):
    ip: str = ""
    svc_name: str = ""
    domain: str = ""
    hostname: str = ""
    uid: str = ""  # the VPC endpoint (vpce-...) the call came through


class Url(Struct, frozen=True, gc=False):
    hostname: str


class HttpRequest(Struct, frozen=True, gc=False, omit_defaults=True):
    user_agent: str = ""
    url: Url | None = None


class ResourceDetails(Struct, frozen=True, gc=False, omit_defaults=True):
    uid: str = ""
    type: str = ""
    owner: User | None = None  # only its account


class Policy(Struct, frozen=True, gc=False, omit_defaults=True):
    name: str = ""
    uid: str = ""


class Group(Struct, frozen=True, gc=False, omit_defaults=True):
    name: str = ""
    uid: str = ""


class Observable(Struct, frozen=True, gc=False):
    """One value an analyst pivots on, pointed at by its attribute's path (OCSF ``observable``)."""

    name: str
    type: str
    type_id: int
    value: str


class IdentityExtras(Struct, frozen=True, gc=False, omit_defaults=True):
    """userIdentity parts with no OCSF attribute: sourceIdentity, the session issuer's name, onBehalfOf, ..."""

    session_context: SessionContext | None = field(default=None, name="sessionContext")
    on_behalf_of: OnBehalfOf | None = field(default=None, name="onBehalfOf")
    in_scope_of: Raw = field(default=NULL, name="inScopeOf")
    invoked_by_delegate: InvokedByDelegate | None = field(default=None, name="invokedByDelegate")


class Unmapped(Struct, frozen=True, gc=False, omit_defaults=True):
    """Built positionally in :func:`to_ocsf` (see :class:`Event`): keep the two in the same order."""

    classification: Classification
    event_type: str = field(default="", name="eventType")
    event_category: str = field(default="", name="eventCategory")
    management_event: bool | None = field(default=None, name="managementEvent")
    read_only: bool | str | None = field(default=None, name="readOnly")
    session_credential_from_console: str | bool = field(default="", name="sessionCredentialFromConsole")
    vpc_endpoint_account_id: str = field(default="", name="vpcEndpointAccountId")
    tls_details: TlsDetails | None = field(default=None, name="tlsDetails")
    request_parameters: Raw = field(default=NULL, name="requestParameters")  # only when no requestID
    additional_event_data: Raw = field(default=NULL, name="additionalEventData")
    service_event_details: Raw = field(default=NULL, name="serviceEventDetails")
    insight_details: InsightDetails | None = field(default=None, name="insightDetails")
    edge_device_details: Raw = field(default=NULL, name="edgeDeviceDetails")
    addendum: Raw = NULL
    event_context: Raw = field(default=NULL, name="eventContext")
    user_identity: IdentityExtras | None = field(default=None, name="userIdentity")
    resources: Raw = NULL  # classes without a resources attribute (Authentication, Account Change, Group ...)


# As Amazon Security Lake names it, so one query finds CloudTrail events from either.
PRODUCT: Final = Product(name="CloudTrail", vendor_name="AWS")
PROFILES: Final = ("cloud",)
AWS: Final = "AWS"
# Placeholders that let Event's required attributes follow optional ones without kw_only (below). msgspec's
# omit_defaults compares a value with its default by identity, and to_ocsf never passes these objects, so the
# attributes they stand in for are always written. (raw_data "" and raw_data_size 0 would mean an empty record,
# which never decodes.)
_NO_METADATA: Final = Metadata("", PRODUCT, ())
_NO_CLOUD: Final = Cloud("")
_NO_API: Final = Api("")
_NO_ACTOR: Final = Actor()
_NO_ENDPOINT: Final = Endpoint()
_NO_UNMAPPED: Final = Unmapped(Classification("", "", ""))


class Event(Struct, frozen=True, gc=False, omit_defaults=True):
    """The union of the four classes' attributes we fill; each event carries only its class's.

    Built positionally in :func:`to_ocsf`: a call with more than 15 keyword arguments makes CPython build a dict
    for it, and that made this one call ~5 us of the ~20 us an event cost. Keep the two in the same order, and the
    call at 30 arguments at most: past that CPython packs them into a tuple and calls through ``tp_call``, which
    doubled this call's instructions (3.5k -> 6.5k, callgrind): 26 now."""

    class_uid: int
    class_name: str
    category_uid: int
    category_name: str
    activity_id: int
    activity_name: str
    type_uid: int
    type_name: str
    severity_id: int  # required by OCSF: no default, so omit_defaults never drops it
    severity: str
    time: int
    status_id: int = 0
    status: str = ""
    status_code: str = ""
    status_detail: str = ""
    metadata: Metadata = _NO_METADATA
    cloud: Cloud = _NO_CLOUD
    api: Api = _NO_API
    actor: Actor = _NO_ACTOR
    src_endpoint: Endpoint = _NO_ENDPOINT
    http_request: HttpRequest | None = None
    resources: list[ResourceDetails] | None = None
    raw_data: str = ""
    raw_data_size: int = 0
    unmapped: Unmapped = _NO_UNMAPPED
    observables: Raw = NULL  # a JSON array of Observable, encoded once per distinct value (ocsf._observables)
    # The Identity & Access Management classes' own attributes, last: to_ocsf builds every event with the 26
    # above and adds these (msgspec.structs.replace) only to the events of those classes.
    dst_endpoint: Endpoint | None = None
    user: User | None = None
    user_result: User | None = None
    policy: Policy | None = None
    group: Group | None = None
    privileges: tuple[str, ...] | None = None
    session: Session | None = None
    auth_protocol_id: int = 0
    auth_protocol: str = ""
    is_mfa: bool | None = None
    service: Service | None = None

"""ingester.codec.ocsf: CloudTrail record -> OCSF 1.5.0 event, validated against the official schema.

The schema check uses ``ocsf-emitter`` (PyPI), whose Pydantic models are generated from the OCSF 1.5.0
metaschema: ``model_validate`` checks types, enums and required attributes, ``ocsf_emitter.validate`` the class
invariants (category, type_uid, sibling names, schema version). Its models accept unknown keys, so
:func:`assert_known_keys` also walks every key we emit against the models' fields: a misspelt attribute fails.
"""

from __future__ import annotations

import copy
import json
import types
from datetime import UTC, datetime
from typing import Any, Union, get_args, get_origin

import msgspec
import ocsf_emitter
import pytest
from ocsf_emitter import _models as ocsf_models
from pydantic import BaseModel

from ingester.codec import classification
from ingester.codec.decode import decode_object, decode_records
from ingester.codec.encode import encode_file
from ingester.codec.ocsf import to_ocsf
from ingester.demo.generate import generate_records
from ingester.models import Shard

from .corpus import (
    DOCUMENTED_ASSUMED_ROLE_IDENTITY,
    DOCUMENTED_AWS_SERVICE_IDENTITY,
    DOCUMENTED_IAM_USER_IDENTITY,
    DOCUMENTED_WEB_IDENTITY_USER_IDENTITY,
    INLINE_ENVELOPE,
    log_file,
    record_bytes,
)

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-west-2:444455556666:trail/org-trail",
    bucket="org-audit-logs",
    key_prefix="",
    org_id="o-exampleorgid",
    account_id="444455556666",
    region="us-west-2",
    reader_account="999988887777",
)
KEY = (
    "AWSLogs/o-exampleorgid/444455556666/CloudTrail/us-west-2/2024/03/10/x_CloudTrail_us-west-2_20240310T1405Z.json.gz"
)
MODELS: dict[int, type[BaseModel]] = {
    6003: ocsf_models.ApiActivity,
    3002: ocsf_models.Authentication,
    3001: ocsf_models.AccountChange,
    3006: ocsf_models.GroupManagement,
}
# Attributes a profile adds to every class it is applied to (OCSF 1.5.0 profiles/cloud.json: cloud, api).
PROFILE_ATTRIBUTES: dict[str, dict[str, type[BaseModel]]] = {
    "cloud": {"cloud": ocsf_models.Cloud, "api": ocsf_models.Api},
}

# userIdentity shapes from AWS's "CloudTrail userIdentity element" page that tests/unit/corpus.py lacks.
DOCUMENTED_IDENTITY_CENTER_USER: dict[str, Any] = {
    "type": "IdentityCenterUser",
    "accountId": "123456789012",
    "onBehalfOf": {
        "userId": "544894e8-80c1-707f-60e3-3ba6510dfac1",
        "identityStoreArn": "arn:aws:identitystore::123456789012:identitystore/d-9067642ac7",
    },
    "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
}
# Same page, "AWS STS source identity": the sessionContext example (spaces in the docs' ARNs removed).
DOCUMENTED_SOURCE_IDENTITY_SESSION: dict[str, Any] = {
    "type": "AssumedRole",
    "principalId": "AROAJ45Q7YFFAREXAMPLE:Dev1",
    "arn": "arn:aws:sts::123456789012:assumed-role/DevRole/Dev1",
    "accountId": "123456789012",
    "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAJ45Q7YFFAREXAMPLE",
            "arn": "arn:aws:iam::123456789012:role/DevRole",
            "accountId": "123456789012",
            "userName": "DevRole",
        },
        "webIdFederationData": {},
        "attributes": {"mfaAuthenticated": "false", "creationDate": "2021-02-21T23:46:28Z"},
        "sourceIdentity": "source-identity-value-set",
    },
}
# Same page, "AWS STS source identity": AssumeRole called by another account.
DOCUMENTED_AWS_ACCOUNT_IDENTITY: dict[str, Any] = {
    "type": "AWSAccount",
    "principalId": "AIDAJ45Q7YFFAREXAMPLE",
    "accountId": "123456789012",
}
# Same page, sessionContext.signInSessionArn and invokedByDelegate (product provider with delegated access).
DOCUMENTED_DELEGATED_SESSION: dict[str, Any] = {
    "type": "AssumedRole",
    "principalId": "AROAI...",
    "arn": "arn:aws:sts::123456789012:assumed-role/Alice/Session",
    "accountId": "123456789012",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAI...",
            "arn": "arn:aws:iam::123456789012:role/Alice",
            "accountId": "123456789012",
            "userName": "Alice",
        },
        "signInSessionArn": "arn:aws:signin:us-east-1:123456789012:session/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
        "attributes": {"mfaAuthenticated": "false", "creationDate": "20131102T010628Z"},
    },
    "invokedByDelegate": {"accountId": "999999999999"},
}
# The page names SAMLUser (principalId = saml:namequalifier + saml:sub, userName = saml:sub); illustrative values.
SAML_USER_IDENTITY: dict[str, Any] = {
    "type": "SAMLUser",
    "principalId": "SSDMuR1tMbLwUGc0T2ln6S3zL6s=:alice@example.com",
    "userName": "alice@example.com",
    "identityProvider": "SSDMuR1tMbLwUGc0T2ln6S3zL6s=",
}
# Illustrative: an identity-enhanced role session (IAM Identity Center trusted identity propagation) carries the
# Identity Center user in userIdentity.onBehalfOf beside the role session.
IDENTITY_ENHANCED_SESSION: dict[str, Any] = {
    **DOCUMENTED_SOURCE_IDENTITY_SESSION,
    "onBehalfOf": {
        "userId": "94d00cd8-e9e6-4810-b177-b08e84775435",
        "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-1234567890",
    },
}
FEDERATED_USER_IDENTITY: dict[str, Any] = {
    "type": "FederatedUser",
    "principalId": "123456789012:ivan-sync",
    "arn": "arn:aws:sts::123456789012:federated-user/ivan-sync",
    "accountId": "123456789012",
    "accessKeyId": "ASIAIOISGUICFVN3J7IY",
    "sessionContext": {
        "sessionIssuer": {
            "type": "IAMUser",
            "principalId": "AIDAPKVUKOKXPXC5KURUZ",
            "arn": "arn:aws:iam::123456789012:user/ivan",
            "accountId": "123456789012",
            "userName": "ivan",
        },
        "attributes": {"creationDate": "2024-04-30T23:45:07Z", "mfaAuthenticated": "true"},
    },
}


# ---------------------------------------------------------------------------------------------------- schema


def _unwrap(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def _check_value(value: Any, annotation: Any, path: str) -> None:
    for candidate in _unwrap(annotation):
        if get_origin(candidate) is list:
            assert isinstance(value, list), f"{path}: expected an array"
            for index, item in enumerate(value):
                _check_value(item, get_args(candidate)[0], f"{path}[{index}]")
        elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
            assert isinstance(value, dict), f"{path}: expected an object"
            if candidate.model_fields:  # OCSF's free-form `object` (unmapped) has none: any key goes
                assert_known_keys(value, candidate, path)


def assert_known_keys(
    value: dict[str, Any], model: type[BaseModel], path: str = "$", extra: dict[str, type[BaseModel]] | None = None
) -> None:
    """Every key is an attribute of ``model`` (or one of ``extra``, a profile's), recursively."""
    fields: dict[str, Any] = {info.alias or name: info.annotation for name, info in model.model_fields.items()}
    fields.update(extra or {})
    for key, item in value.items():
        assert key in fields, f"{path}.{key} is not an attribute of OCSF {model.__name__}"
        _check_value(item, fields[key], f"{path}.{key}")


def validate_ocsf(event: dict[str, Any]) -> BaseModel:
    """The event against the official OCSF 1.5.0 models, strictly; returns the validated model instance."""
    model = MODELS[event["class_uid"]]
    profiles: dict[str, type[BaseModel]] = {}
    for profile in event["metadata"].get("profiles", []):
        profiles.update(PROFILE_ATTRIBUTES[profile])
    assert_known_keys(event, model, extra={k: v for k, v in profiles.items() if k not in model.model_fields})
    for attribute, profile_model in profiles.items():
        if attribute in event and attribute not in model.model_fields:
            profile_model.model_validate(event[attribute])
    instance = model.model_validate(event)
    ocsf_emitter.validate(instance)  # type: ignore[arg-type]  # any of its supported classes
    return instance


# ---------------------------------------------------------------------------------------------------- helpers


def _ocsf_raw(text: bytes, *, account_id: str = SHARD.account_id, region: str = SHARD.region) -> dict[str, Any]:
    decoded = decode_records([msgspec.Raw(text)])
    assert decoded.rejected == [], decoded.rejected
    [(raw, record)] = decoded.records
    event = to_ocsf(record, raw, account_id=account_id, region=region, log_name=f"s3://{SHARD.bucket}/{KEY}")
    value: dict[str, Any] = json.loads(msgspec.json.encode(event))
    validate_ocsf(value)
    return value


def _ocsf(record: dict[str, Any], **kwargs: str) -> dict[str, Any]:
    return _ocsf_raw(record_bytes(record), **kwargs)


def _with_identity(identity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(INLINE_ENVELOPE), "userIdentity": copy.deepcopy(identity), **fields}


def _corpus(corpus_records: list[tuple[str, dict[str, Any]]], **match: Any) -> list[dict[str, Any]]:
    found = [r for _, r in corpus_records if all(r.get(k) == v for k, v in match.items())]
    assert found, f"the corpus should hold a record with {match}"
    return found


# ---------------------------------------------------------------------------------------------------- validation


def test_every_corpus_record_is_valid_ocsf(corpus_record: tuple[str, dict[str, Any]]) -> None:
    _, record = corpus_record
    text = record_bytes(record)

    event = _ocsf_raw(text)

    assert event["raw_data"].encode() == text  # the exact bytes, as a JSON string
    assert event["raw_data_size"] == len(text)
    assert event["metadata"]["version"] == "1.5.0"
    product = {"name": "CloudTrail", "vendor_name": "AWS"}  # as Security Lake names it
    if "eventCategory" in record:
        product["feature"] = {"name": record["eventCategory"]}
    assert event["metadata"]["product"] == product
    assert event["metadata"]["profiles"] == ["cloud"]
    assert event["metadata"].get("uid") == record.get("eventID")
    assert event["metadata"]["log_name"] == f"s3://{SHARD.bucket}/{KEY}"
    assert event["time"] == int(datetime.fromisoformat(record["eventTime"]).timestamp() * 1000)
    assert event["cloud"] == {
        "provider": "AWS",
        "account": {"uid": record.get("recipientAccountId", SHARD.account_id)},
        "region": record["awsRegion"],
    }
    assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    assert event["severity_id"] == 1
    details = record.get("insightDetails", {})
    assert event["api"]["operation"] == record.get("eventName", details.get("eventName"))
    assert event["api"]["service"]["name"] == record.get("eventSource", details.get("eventSource"))
    assert event["unmapped"]["classification"]["version"] == classification.VERSION


def test_generated_records_are_valid_ocsf() -> None:
    """Thousands of realistic records of ~100 eventNames and every identity type, from the demo generator."""
    seen_classes: set[int] = set()
    seen_types: set[str] = set()
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for seed, region in ((1, "us-east-1"), (2, "eu-west-1"), (3, "ap-southeast-2")):
        for record in generate_records(seed, "111122223333", region, start, 1200):
            event = _ocsf_raw(json.dumps(record).encode())
            seen_classes.add(event["class_uid"])
            seen_types.add(event.get("actor", {}).get("user", {}).get("type", ""))
            assert event["unmapped"]["classification"]["category"] != "other", record["eventName"]
    assert seen_classes == {6003, 3002, 3001}
    assert {"AssumedRole", "AWSService", "IAMUser", "Root", "IdentityCenterUser", "FederatedUser"} <= seen_types


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda e: e["actor"]["user"].__setitem__("nmae", "x"), "$.actor.user.nmae"),
        (lambda e: e.__setitem__("src_endpoints", {}), "$.src_endpoints"),
        (lambda e: e["api"]["service"].__setitem__("label", "x"), "$.api.service.label"),
        (lambda e: e["metadata"]["product"].__setitem__("vendor", "AWS"), "$.metadata.product.vendor"),
    ],
)
def test_the_strict_check_rejects_a_misspelt_attribute(mutate: Any, fragment: str) -> None:
    event = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY))
    mutate(event)

    with pytest.raises(AssertionError, match=fragment.replace("$", r"\$").replace(".", r"\.")):
        validate_ocsf(event)


def test_the_strict_check_lets_unmapped_hold_anything() -> None:
    event = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY))
    event["unmapped"]["anything"] = {"at": ["all"]}

    validate_ocsf(event)


# ---------------------------------------------------------------------------------------------------- classes


def test_console_login_is_an_authentication_logon(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in _corpus(corpus_records, eventName="ConsoleLogin"):
        event = _ocsf(record)
        assert (event["class_uid"], event["activity_id"], event["activity_name"]) == (3002, 1, "Logon")
        assert event["user"] == event["actor"]["user"]
        assert event["service"] == {"name": "signin.amazonaws.com"}
        assert event["is_mfa"] is (record["additionalEventData"]["MFAUsed"].lower() == "yes")  # AWS writes "YES" too
        assert event["unmapped"]["classification"]["category"] == "authentication"


def test_failed_console_login_is_a_failure_without_error_code(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    failed = [r for r in _corpus(corpus_records, eventName="ConsoleLogin") if "errorMessage" in r]
    assert failed

    for record in failed:
        assert "errorCode" not in record
        event = _ocsf(record)
        assert (event["status_id"], event["status"]) == (2, "Failure")
        assert event["status_detail"] == record["errorMessage"]


def test_check_mfa_is_preauth(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in _corpus(corpus_records, eventName="CheckMfa"):
        assert _ocsf(record)["type_name"] == "Authentication: Preauth"


def test_create_user_is_an_account_change_of_the_new_user(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    [record] = _corpus(corpus_records, eventName="CreateUser")

    event = _ocsf(record)

    assert (event["class_uid"], event["activity_name"]) == (3001, "Create")
    assert event["user"]["name"] == "Bob"
    assert event["user_result"]["uid"] == "arn:aws:iam::123456789012:user/Bob"
    assert event["user_result"]["uid_alt"] == "EXAMPLEUSERID"
    assert event["actor"]["user"]["name"] == "Alice"


def test_root_mfa_and_password_changes_are_account_changes(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    [mfa] = _corpus(corpus_records, eventName="EnableMFADevice")
    [password] = _corpus(corpus_records, eventName="PasswordUpdated")

    enabled = _ocsf(mfa)
    assert enabled["type_name"] == "Account Change: MFA Factor Enable"
    assert enabled["user"]["type"] == "Root"  # requestParameters.userName is "AWS ROOT USER"
    changed = _ocsf(password)
    assert changed["type_name"] == "Account Change: Password Change"
    assert changed["user"]["type"] == "Root"  # no userName in the request: the caller changed its own


@pytest.mark.parametrize(
    ("name", "parameters", "activity", "policy"),
    [
        ("AttachUserPolicy", {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
         "Attach Policy", {"name": "AdministratorAccess", "uid": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ("DetachUserPolicy", {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
         "Detach Policy", {"name": "ReadOnlyAccess", "uid": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        ("PutUserPolicy", {"userName": "bob", "policyName": "inline"}, "Attach Policy", {"name": "inline"}),
        ("DeleteAccessKey", {"userName": "bob", "accessKeyId": "AKIAIOSFODNN7EXAMPLE"}, "Delete", None),
        ("UpdateLoginProfile", {"userName": "bob"}, "Password Reset", None),
        ("DeactivateMFADevice", {"userName": "bob", "serialNumber": "arn:aws:iam::1:mfa/bob"}, "MFA Factor Disable",
         None),
        ("DeleteUser", {"userName": "bob"}, "Delete", None),
    ],
)  # fmt: skip
def test_iam_user_changes_are_account_changes(
    name: str, parameters: dict[str, str], activity: str, policy: dict[str, str] | None
) -> None:
    record = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="iam.amazonaws.com", eventName=name)
    record["requestParameters"] = parameters

    event = _ocsf(record)

    assert (event["class_uid"], event["activity_name"]) == (3001, activity)
    assert event["user"]["name"] == "bob"
    assert event["user"].get("credential_uid") == parameters.get("accessKeyId")
    assert event.get("policy") == policy


def test_create_access_key_names_the_new_key() -> None:
    record = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="iam.amazonaws.com", eventName="CreateAccessKey")
    record["requestParameters"] = {}
    record["responseElements"] = {
        "accessKey": {"accessKeyId": "AKIAI44QH8DHBEXAMPLE", "status": "Active", "userName": "Alice"}
    }

    event = _ocsf(record)

    assert event["user"] == event["actor"]["user"]  # no userName: the caller's own key
    assert event["activity_name"] == "Create"
    assert event["user_result"] == {
        "type": "IAMUser",
        "type_id": 1,
        "name": "Alice",
        "account": {"uid": "123456789012"},
        "credential_uid": "AKIAI44QH8DHBEXAMPLE",
    }


@pytest.mark.parametrize(
    ("source", "name", "read_only", "activity"),
    [
        ("ec2.amazonaws.com", "DescribeInstances", True, "Read"),
        ("s3.amazonaws.com", "GetObject", True, "Read"),
        ("ecr.amazonaws.com", "BatchGetImage", True, "Read"),
        ("ec2.amazonaws.com", "RunInstances", False, "Create"),
        ("s3.amazonaws.com", "PutObject", False, "Create"),
        ("s3.amazonaws.com", "PutBucketPolicy", False, "Update"),
        ("ec2.amazonaws.com", "TerminateInstances", False, "Delete"),
        ("iam.amazonaws.com", "DeletePolicy", False, "Delete"),
        ("sts.amazonaws.com", "AssumeRoot", False, "Create"),
        ("lambda.amazonaws.com", "Invoke", False, "Other"),
        ("kms.amazonaws.com", "Decrypt", True, "Read"),
        ("sts.amazonaws.com", "SomeFutureRead", True, "Read"),
        ("sts.amazonaws.com", "SomeFutureWrite", False, "Other"),
    ],
)
def test_api_activity_from_the_verb(source: str, name: str, read_only: bool, activity: str) -> None:
    event = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource=source, eventName=name, readOnly=read_only))

    assert (event["class_uid"], event["type_name"]) == (6003, f"API Activity: {activity}")
    assert event["activity_name"] == (name if activity == "Other" else activity)  # Other says which API


def test_failed_api_call_carries_error_code_and_message(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in [r for _, r in corpus_records if "errorCode" in r]:
        event = _ocsf(record)
        assert (event["status_id"], event["status_code"], event["status_detail"]) == (
            2, record["errorCode"], record["errorMessage"],
        )  # fmt: skip
        assert event["api"]["response"]["error"] == record["errorCode"]
        assert event["api"]["response"]["message"] == record["errorMessage"]
        assert event["api"]["request"]["uid"] == record["requestID"]


# ---------------------------------------------------------------------------------------------------- actors


def test_assumed_role_separates_the_role_and_the_session() -> None:
    actor = _ocsf(_with_identity(DOCUMENTED_ASSUMED_ROLE_IDENTITY))["actor"]

    assert actor["user"]["type"] == "AssumedRole"
    assert actor["user"]["name"] == "MySessionName"
    assert actor["user"]["uid"] == "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName"
    assert actor["user"]["uid_alt"] == "AROAIDPPEZS35WEXAMPLE:AssumedRoleSessionName"
    assert actor["session"]["issuer"] == "arn:aws:iam::123456789012:role/RoleToBeAssumed"
    assert actor["session"]["is_mfa"] is False
    assert actor["session"]["created_time"] == 1383354388000  # "20131102T010628Z", ISO 8601 basic notation


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("false", False), (True, True), (False, False), ("maybe", None), ("", None)],
)
def test_session_mfa_flag_in_either_spelling(value: object, expected: bool | None) -> None:
    identity = copy.deepcopy(DOCUMENTED_ASSUMED_ROLE_IDENTITY)
    identity["sessionContext"]["attributes"]["mfaAuthenticated"] = value

    assert _ocsf(_with_identity(identity))["actor"]["session"].get("is_mfa") is expected


def test_assumed_role_source_identity_is_kept() -> None:
    event = _ocsf(_with_identity(DOCUMENTED_SOURCE_IDENTITY_SESSION))

    context = event["unmapped"]["userIdentity"]["sessionContext"]
    assert context["sourceIdentity"] == "source-identity-value-set"
    assert context["sessionIssuer"]["userName"] == "DevRole"
    assert event["actor"]["user"]["name"] == "Dev1"
    assert event["actor"]["session"]["issuer"] == "arn:aws:iam::123456789012:role/DevRole"
    assert event["actor"]["session"] == {
        "issuer": "arn:aws:iam::123456789012:role/DevRole",
        "created_time": 1613951188000,
        "is_mfa": False,
        "credential_uid": "ASIAIOSFODNN7EXAMPLE",  # the temporary key; the session has no uid of its own here
    }


def test_identity_center_user_is_the_user_on_whose_behalf() -> None:
    actor = _ocsf(_with_identity(DOCUMENTED_IDENTITY_CENTER_USER))["actor"]

    assert actor["user"] == {
        "type": "IdentityCenterUser",
        "type_id": 1,
        "uid_alt": "544894e8-80c1-707f-60e3-3ba6510dfac1",  # no ARN, no principalId: the Identity Center id
        "account": {"uid": "123456789012"},
        "credential_uid": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
    }
    assert actor["idp"] == {
        "name": "AWS IAM Identity Center",
        "uid": "arn:aws:identitystore::123456789012:identitystore/d-9067642ac7",
    }


def test_identity_enhanced_role_session_names_the_identity_center_user() -> None:
    event = _ocsf(_with_identity(IDENTITY_ENHANCED_SESSION))

    assert event["actor"]["user"]["name"] == "Dev1"
    assert event["actor"]["session"]["issuer"] == "arn:aws:iam::123456789012:role/DevRole"
    assert event["actor"]["idp"]["uid"] == IDENTITY_ENHANCED_SESSION["onBehalfOf"]["identityStoreArn"]
    assert event["unmapped"]["userIdentity"]["onBehalfOf"] == IDENTITY_ENHANCED_SESSION["onBehalfOf"]


def test_aws_service_actor_is_the_invoking_service() -> None:
    record = _with_identity(DOCUMENTED_AWS_SERVICE_IDENTITY, sourceIPAddress="ebs.amazonaws.com")

    event = _ocsf(record)

    assert event["actor"]["invoked_by"] == "ebs.amazonaws.com"
    assert event["actor"]["user"] == {"type": "AWSService", "type_id": 3, "name": "ebs.amazonaws.com"}
    assert event["src_endpoint"] == {"svc_name": "ebs.amazonaws.com", "domain": "ebs.amazonaws.com"}


def test_corpus_service_events_are_invoked_by_aws_internal(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in _corpus(corpus_records, eventType="AwsServiceEvent"):
        event = _ocsf(record)
        assert event["actor"]["invoked_by"] == "AWS Internal"
        assert event["src_endpoint"] == {"svc_name": "AWS Internal"}


def test_web_identity_and_saml_users_name_their_identity_provider() -> None:
    web = _ocsf(_with_identity(DOCUMENTED_WEB_IDENTITY_USER_IDENTITY))["actor"]
    saml = _ocsf(_with_identity(SAML_USER_IDENTITY))["actor"]

    assert web["user"]["name"] == "user-id"
    assert web["idp"] == {"name": "accounts.google.com", "protocol_name": "OIDC"}
    assert saml["user"]["name"] == "alice@example.com"
    assert saml["idp"] == {"name": "SSDMuR1tMbLwUGc0T2ln6S3zL6s=", "protocol_name": "SAML"}


def test_federated_user_is_named_and_its_issuer_is_the_iam_user() -> None:
    actor = _ocsf(_with_identity(FEDERATED_USER_IDENTITY))["actor"]

    assert actor["user"]["name"] == "ivan-sync"
    assert actor["session"]["issuer"] == "arn:aws:iam::123456789012:user/ivan"
    assert actor["session"]["is_mfa"] is True


def test_root_and_iam_users_from_the_corpus(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in [r for _, r in corpus_records if r.get("userIdentity", {}).get("type") in ("Root", "IAMUser")]:
        identity = record["userIdentity"]
        user = _ocsf(record)["actor"]["user"]
        assert user["type"] == identity["type"]
        assert user["name"] == identity.get("userName", "root")
        assert user["type_id"] == (2 if identity["type"] == "Root" else 1)
        assert user.get("uid") == identity.get("arn")
        assert user["uid_alt"] == identity["principalId"]


def test_aws_account_and_delegated_sessions() -> None:
    account = _ocsf(_with_identity(DOCUMENTED_AWS_ACCOUNT_IDENTITY, eventSource="sts.amazonaws.com"))["actor"]
    delegated = _ocsf(_with_identity(DOCUMENTED_DELEGATED_SESSION))

    assert account["user"] == {
        "type": "AWSAccount",
        "type_id": 99,
        "uid_alt": "AIDAJ45Q7YFFAREXAMPLE",  # no ARN: no uid, rather than a second one for the same principal
        "account": {"uid": "123456789012"},
    }
    assert delegated["actor"]["session"]["uid"] == DOCUMENTED_DELEGATED_SESSION["sessionContext"]["signInSessionArn"]
    assert delegated["unmapped"]["userIdentity"]["invokedByDelegate"] == {"accountId": "999999999999"}


def test_unknown_and_missing_identities_still_map() -> None:
    unknown = _ocsf(_with_identity({"type": "Unknown", "principalId": "123456789012", "userName": "judy@example.com"}))
    nobody = _ocsf({k: v for k, v in INLINE_ENVELOPE.items() if k != "userIdentity"})

    assert unknown["actor"]["user"] == {
        "type": "Unknown",
        "type_id": 99,
        "name": "judy@example.com",
        "uid_alt": "123456789012",
        "email_addr": "judy@example.com",
    }
    assert nobody["actor"] == {}


# ---------------------------------------------------------------------------------------------------- fields


def test_resources_become_resource_details(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in [r for _, r in corpus_records if r.get("resources")]:
        resources = _ocsf(record)["resources"]
        assert resources == [
            {"uid": item["ARN"], "type": item["type"], "owner": {"account": {"uid": item["accountId"]}}}
            for item in record["resources"]
        ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("192.0.2.1", {"ip": "192.0.2.1"}),
        ("2001:db8::a0de", {"ip": "2001:db8::a0de"}),
        ("cloudformation.amazonaws.com", {"svc_name": "cloudformation.amazonaws.com",
                                          "domain": "cloudformation.amazonaws.com"}),
        ("AWS Internal", {"svc_name": "AWS Internal"}),
    ],
)  # fmt: skip
def test_src_endpoint(source: str, expected: dict[str, str]) -> None:
    plain = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY, sourceIPAddress=source))
    via_vpce = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY, sourceIPAddress=source, vpcEndpointId="vpce-1a2b"))

    assert plain["src_endpoint"] == expected
    assert via_vpce["src_endpoint"] == {**expected, "uid": "vpce-1a2b"}


def test_tls_details_give_the_host_and_are_kept() -> None:
    tls = {
        "tlsVersion": "TLSv1.3",
        "cipherSuite": "TLS_AES_128_GCM_SHA256",
        "clientProvidedHostHeader": "ec2.us-east-1.amazonaws.com",
    }

    event = _ocsf(_with_identity(DOCUMENTED_IAM_USER_IDENTITY, tlsDetails=tls))

    assert event["http_request"] == {"user_agent": "aws-cli/2.15.0", "url": {"hostname": "ec2.us-east-1.amazonaws.com"}}
    assert event["unmapped"]["tlsDetails"] == tls


def test_insights_record_names_the_api_and_keeps_its_details(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in _corpus(corpus_records, eventType="AwsCloudTrailInsight"):
        event = _ocsf(record)
        details = record["insightDetails"]
        assert event["type_name"] == "API Activity: Other"
        assert event["api"] == {"operation": details["eventName"], "service": {"name": details["eventSource"]}}
        assert event["metadata"]["correlation_uid"] == record["sharedEventID"]
        assert event["unmapped"]["insightDetails"] == details
        assert event["unmapped"]["classification"]["subtype"] == "api-call-rate"
        assert (event["status_id"], event["status"]) == (99, details["state"])  # Other, named by its state


def test_network_activity_event_denied_by_a_vpc_endpoint_policy() -> None:
    """The shape AWS documents for network activity events (eventType AwsVpceEvent, eventCategory
    NetworkActivity, errorCode VpceAccessDenied); illustrative values."""
    record = _with_identity(
        DOCUMENTED_ASSUMED_ROLE_IDENTITY,
        eventVersion="1.11",
        eventSource="s3.amazonaws.com",
        eventName="ListBuckets",
        sourceIPAddress="10.0.141.54",
        eventType="AwsVpceEvent",
        eventCategory="NetworkActivity",
        errorCode="VpceAccessDenied",
        errorMessage="The request was denied due to a VPC endpoint policy",
        vpcEndpointId="vpce-03y53r4ukkkuygzg0",
        vpcEndpointAccountId="123456789012",
        sharedEventID="735fbea7-a934-43f7-a926-355589c59007",
    )

    event = _ocsf(record)

    assert (event["status"], event["status_code"]) == ("Failure", "VpceAccessDenied")
    assert event["src_endpoint"] == {"ip": "10.0.141.54", "uid": "vpce-03y53r4ukkkuygzg0"}
    assert event["unmapped"]["eventCategory"] == "NetworkActivity"
    assert event["unmapped"]["vpcEndpointAccountId"] == "123456789012"


EVENT_VERSIONS = ["1.0", "1.01", "1.02", "1.03", "1.04", "1.05", "1.06", "1.07", "1.08", "1.09", "1.10", "1.11"]


@pytest.mark.parametrize("version", EVENT_VERSIONS)
@pytest.mark.parametrize("shape", [{"a": [1, 2.50, None]}, "a string", None], ids=["object", "string", "null"])
def test_free_form_parts_of_any_shape_in_any_event_version(version: str, shape: Any) -> None:
    record = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventVersion=version)
    for name in ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails"):
        record[name] = shape
    for name in ("edgeDeviceDetails", "addendum", "eventContext"):
        record[name] = shape

    event = _ocsf(record)

    assert event["metadata"]["log_version"] == version
    assert event["api"].get("request", {}).get("data") == shape
    assert event["api"].get("response", {}).get("data") == shape
    for name in ("additionalEventData", "serviceEventDetails", "edgeDeviceDetails", "addendum", "eventContext"):
        assert event["unmapped"].get(name) == shape


def test_documented_optional_fields_map() -> None:
    record = _with_identity(
        DOCUMENTED_IAM_USER_IDENTITY,
        sessionCredentialFromConsole="true",
        addendum={
            "reason": "UPDATED_DATA",
            "updatedFields": "sourceIPAddress",
            "originalRequestID": "r",
            "originalEventID": "e",
        },
        edgeDeviceDetails={"type": "outposts", "deviceID": "op-01ac5d28a6a232904"},
        apiVersion="2016-11-15",
        someFutureField={"kept": ["in", "raw_data"]},
    )

    event = _ocsf(record)

    assert event["unmapped"]["sessionCredentialFromConsole"] == "true"
    assert event["unmapped"]["addendum"]["reason"] == "UPDATED_DATA"
    assert event["unmapped"]["edgeDeviceDetails"]["deviceID"] == "op-01ac5d28a6a232904"
    assert event["api"]["version"] == "2016-11-15"
    assert json.loads(event["raw_data"])["someFutureField"] == {"kept": ["in", "raw_data"]}


def test_unexpected_shapes_of_read_parts_are_left_unmapped() -> None:
    """The mapping reads resources, sign-in results and IAM parameters; other shapes must not raise."""
    sign_in = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="signin.amazonaws.com", eventName="ConsoleLogin")
    sign_in.update(responseElements="Success", additionalEventData=["MFAUsed"], resources="not-a-list")
    change = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="iam.amazonaws.com", eventName="CreateUser")
    change.update(requestParameters="bob", responseElements={"user": "bob"}, resources=[{"ARN": 1}])

    login, created = _ocsf(sign_in), _ocsf(change)

    assert (login["status"], "is_mfa" in login, "resources" in login) == ("Success", False, False)
    assert created["user"] == {"account": {"uid": "123456789012"}} and "resources" not in created  # user unknown


def test_raw_data_keeps_escapes_and_unicode_byte_for_byte() -> None:
    text = (
        b'{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","eventSource":"s3.amazonaws.com",'
        b'"eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1",'
        b'"requestParameters":{"key":"\\u00e9t\\u00e9 \\"q\\"/\xc3\xa9\\n", "n": 1.50 },"eventID":"e"}'
    )

    event = _ocsf_raw(text)

    assert event["raw_data"].encode() == text
    assert event["unmapped"]["requestParameters"] == {"key": 'été "q"/é\n', "n": 1.5}  # no requestID


# ---------------------------------------------------------------------------------------------------- encode


def test_encode_ocsf_keys_like_the_other_formats(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    raws = [record_bytes(record) for _, record in corpus_records]
    decoded = decode_object(log_file(raws), KEY)

    by_format = {fmt: encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt) for fmt in ("ocsf", "native", "raw")}

    shapes = {fmt: [(r.key, r.partition_key, r.timestamp_ms) for r in out] for fmt, out in by_format.items()}
    assert shapes["ocsf"] == shapes["native"] == shapes["raw"]
    for outbound, text in zip(by_format["ocsf"], raws, strict=True):
        event = json.loads(outbound.value)
        validate_ocsf(event)
        assert event["raw_data"].encode() == text
        assert outbound.timestamp_ms == event["time"]


def test_without_raw_data_events_lose_only_the_original(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    """sink.ocsf_raw_data = false: the same events, valid, minus raw_data and raw_data_size, and smaller."""
    raws = [record_bytes(record) for _, record in corpus_records]
    decoded = decode_object(log_file(raws), KEY)

    full = encode_file(decoded, shard=SHARD, key=KEY, fmt="ocsf")
    lean = encode_file(decoded, shard=SHARD, key=KEY, fmt="ocsf", raw_data=False)

    assert [(r.key, r.timestamp_ms, r.headers) for r in lean] == [(r.key, r.timestamp_ms, r.headers) for r in full]
    for with_raw, without in zip(full, lean, strict=True):
        event = json.loads(without.value)
        validate_ocsf(event)
        assert "raw_data" not in event and "raw_data_size" not in event
        expected = json.loads(with_raw.value)
        del expected["raw_data"], expected["raw_data_size"]
        assert event == expected
    assert sum(len(r.value) for r in lean) < 0.75 * sum(len(r.value) for r in full)


def test_native_events_carry_the_classification(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    decoded = decode_object(log_file([record_bytes(record) for _, record in corpus_records]), KEY)

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="native")

    for outbound, (_, record) in zip(out, decoded.records, strict=True):
        value = json.loads(outbound.value)
        expected = classification.classify_record(record)
        assert value["classification"] == msgspec.to_builtins(expected)
        assert value["schema"] == "ingester.cloudtrail.v1"


def test_required_attributes_are_written_even_when_empty() -> None:
    # Event is built positionally; its required attributes have placeholder defaults that must never be omitted.
    event = _ocsf_raw(b'{"eventVersion":"1.08"}')

    assert {"metadata", "cloud", "api", "actor", "src_endpoint", "raw_data", "raw_data_size", "unmapped"} <= set(event)
    assert (event["actor"], event["src_endpoint"], event["api"]) == ({}, {}, {"operation": ""})
    assert event["unmapped"]["classification"]["category"] == "other"


# ---------------------------------------------------------------------------------------------------- observables


def test_observables_name_the_source_ip_the_caller_and_the_account_not_the_resources() -> None:
    record = _with_identity(
        DOCUMENTED_ASSUMED_ROLE_IDENTITY,
        resources=[{"ARN": "arn:aws:s3:::bucket/key", "accountId": "123456789012", "type": "AWS::S3::Object"}],
    )

    observables = _ocsf(record)["observables"]

    assert observables == [
        {"name": "src_endpoint.ip", "type": "IP Address", "type_id": 2, "value": "192.0.2.1"},
        {"name": "actor.user.name", "type": "User Name", "type_id": 4, "value": "MySessionName"},
        {"name": "cloud.account.uid", "type": "Account UID", "type_id": 35, "value": "123456789012"},
    ]  # resources' ARNs are left out: distinct per record, they were most of the cost (README, Cost)


def test_observables_of_a_call_from_a_service_name_its_host() -> None:
    record = _with_identity(DOCUMENTED_AWS_SERVICE_IDENTITY, sourceIPAddress="ebs.amazonaws.com")

    observables = _ocsf(record)["observables"]

    assert observables[0] == {
        "name": "src_endpoint.domain",
        "type": "Hostname",
        "type_id": 1,
        "value": "ebs.amazonaws.com",
    }


def test_observables_of_a_sign_in_name_the_user_and_the_console_host(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    sign_in = next(r for r in _corpus(corpus_records, eventName="ConsoleLogin") if "LoginTo" in str(r))

    event = _ocsf(sign_in)

    names = {item["name"]: item["value"] for item in event["observables"]}
    assert names["user.name"] == event["user"]["name"]
    assert names["dst_endpoint.hostname"] == event["dst_endpoint"]["hostname"]
    assert names["src_endpoint.ip"] == sign_in["sourceIPAddress"]


def test_every_observable_points_at_the_value_it_names(corpus_record: tuple[str, dict[str, Any]]) -> None:
    event = _ocsf(corpus_record[1])

    for item in event.get("observables", []):
        path, _, field = item["name"].rpartition(".")
        holders = [event]
        for part in path.split("."):
            holders = [h for holder in holders for h in _children(holder, part)]
        assert item["value"] in [holder.get(field) for holder in holders], item


def _children(holder: dict[str, Any], part: str) -> list[dict[str, Any]]:
    value = holder.get(part.removesuffix("[]"))
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []

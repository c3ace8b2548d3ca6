"""ingester.codec.ocsf_iam: Authentication (sign-ins, STS credentials), Account Change (users, roles, the account)
and Group Management, fed by real records of the shared corpus where it has them; every event is validated against
the official OCSF 1.5.0 models (test_ocsf.validate_ocsf)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ingester.codec.decode import decode_records
from ingester.codec.ocsf import to_ocsf

from .corpus import DOCUMENTED_IAM_USER_IDENTITY, PUBLIC_RECORDS_DIR, missing_reason, public_lines, public_records
from .test_ocsf import SHARD, _corpus, _ocsf, _with_identity, validate_ocsf


def _public(event_name: str) -> list[dict[str, Any]]:
    if not public_lines():
        pytest.skip(missing_reason(PUBLIC_RECORDS_DIR))
    found = public_records(event_name)
    assert found, f"the public corpus should hold a {event_name} record"
    return found


def _iam(name: str, parameters: Any = None, response: Any = None, **fields: Any) -> dict[str, Any]:
    record = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="iam.amazonaws.com", eventName=name, **fields)
    record.update(requestParameters=parameters, responseElements=response)
    return record


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# ------------------------------------------------------------------------------------------------ the whole corpus


def test_every_public_corpus_record_is_valid_ocsf() -> None:
    """About 4,000 real records of ~100 sources: each decodes, maps and validates against OCSF 1.5.0."""
    lines = public_lines()
    if not lines:
        pytest.skip(missing_reason(PUBLIC_RECORDS_DIR))
    classes: set[int] = set()
    for line in lines:
        decoded = decode_records([msgspec.Raw(line)])
        for raw, record in decoded.records:
            event = json.loads(msgspec.json.encode(to_ocsf(record, raw, account_id="1", region="us-east-1")))
            validate_ocsf(event)
            classes.add(event["class_uid"])
    assert classes == {3001, 3002, 3006, 6003}


# ------------------------------------------------------------------------------------------------ STS credentials


@pytest.mark.parametrize("name", ["AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRole"])
def test_role_assumption_is_a_logon_of_the_role_session(name: str) -> None:
    records = [r for r in _public(name) if r.get("responseElements")]
    assert records
    for record in records:
        event = _ocsf(record)
        request, response = record["requestParameters"], record["responseElements"]
        assert (event["class_uid"], event["activity_name"], event["status"]) == (3002, "Logon", "Success")
        assert event["user"]["type"] == "AssumedRole"
        assert event["user"]["uid"] == request["roleArn"]
        assert event["user"]["name"] == request["roleSessionName"]
        assert event["user"]["account"]["uid"] == request["roleArn"].split(":")[4]
        session, assumed = event["session"], response.get("assumedRoleUser", {})  # some real records lack it
        assert session.get("uid") == assumed.get("arn")
        assert session.get("uid_alt") == assumed.get("assumedRoleId")
        assert session["credential_uid"] == response["credentials"]["accessKeyId"]
        assert session["issuer"] == request["roleArn"]
        assert session["expiration_time"] > 0
        assert event["actor"]["user"]["type"] == record["userIdentity"]["type"]  # the caller
        assert event["service"] == {"name": "sts.amazonaws.com"}
        assert "resources" not in event  # not an Authentication attribute: kept under unmapped
        assert event["unmapped"].get("resources") == record.get("resources")


def test_saml_and_web_identity_name_the_identity_provider() -> None:
    [saml] = _public("AssumeRoleWithSAML")
    [web] = _public("AssumeRoleWithWebIdentity")

    saml_event, web_event = _ocsf(saml), _ocsf(web)

    assert saml_event["actor"]["idp"] == {
        "name": "Shibboleth",
        "uid": "arn:aws:iam::444455556666:saml-provider/Shibboleth",
        "protocol_name": "SAML",
        "issuer": "https://server.example.com/idp/shibboleth",
    }
    assert (saml_event["auth_protocol_id"], saml_event["auth_protocol"]) == (5, "SAML")
    assert saml_event["session"]["expiration_time"] == _ms("2016-03-23T02:39:57")  # "Mar 23, 2016 2:39:57 AM"
    assert web_event["actor"]["idp"] == {"name": "accounts.google.com", "protocol_name": "OIDC"}
    assert (web_event["auth_protocol_id"], web_event["auth_protocol"]) == (4, "OpenID")


def test_failed_role_assumption_is_a_failed_logon() -> None:
    failed = [r for r in _public("AssumeRole") if r.get("errorCode")]
    assert failed

    for record in failed:
        event = _ocsf(record)
        assert (event["class_uid"], event["status"], event["status_code"]) == (3002, "Failure", record["errorCode"])
        assert event["user"]["type"] == "AssumedRole"
        assert event["user"].get("uid") == (record.get("requestParameters") or {}).get("roleArn")
        assert "credential_uid" not in event.get("session", {})  # nothing was issued


def test_federation_token_is_a_logon_of_the_federated_user() -> None:
    [record] = [r for r in _public("GetFederationToken") if r.get("responseElements")]

    event = _ocsf(record)

    assert event["type_name"] == "Authentication: Logon"
    assert event["user"] == {
        "type": "FederatedUser",
        "type_id": 99,
        "name": "stratus_red_team",
        "uid": "arn:aws:sts::742491224508:federated-user/stratus_red_team",
        "uid_alt": "742491224508:stratus_red_team",
        "account": {"uid": "742491224508"},
    }
    assert event["session"]["credential_uid"] == "ASIASTJKC5GCM7ZE6LUP"
    assert event["session"]["issuer"] == record["userIdentity"]["arn"]  # the IAM user that asked
    assert event["session"]["expiration_time"] == _ms("2024-11-30T20:43:17")  # "Nov 30, 2024, 8:43:17 PM"


def test_session_token_is_a_logon_of_the_caller_with_mfa() -> None:
    [record] = _public("GetSessionToken")

    event = _ocsf(record)

    assert (event["class_uid"], event["status"]) == (3002, "Failure")
    assert event["user"] == event["actor"]["user"]
    assert event["is_mfa"] is True  # an MFA device's serial number came with the request


@pytest.mark.parametrize(
    ("expiration", "expected"),
    [
        ("Mar 23, 2016 2:39:57 AM", "2016-03-23T02:39:57"),
        ("Nov 30, 2024, 8:43:17 PM", "2024-11-30T20:43:17"),
        ("2024-11-30T20:43:17Z", "2024-11-30T20:43:17"),
        ("whenever", None),
    ],
)
def test_credential_expiry_in_the_shapes_cloudtrail_writes(expiration: str, expected: str | None) -> None:
    record = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="sts.amazonaws.com", eventName="AssumeRole")
    record["requestParameters"] = {"roleArn": "arn:aws:iam::111122223333:role/R", "roleSessionName": "s"}
    record["responseElements"] = {"credentials": {"accessKeyId": "ASIAEXAMPLE", "expiration": expiration}}

    session = _ocsf(record)["session"]

    assert session.get("expiration_time") == (_ms(expected) if expected else None)
    assert session["credential_uid"] == "ASIAEXAMPLE"


# ------------------------------------------------------------------------------------------------ sign-ins


def test_identity_center_sign_in_outcome_comes_from_service_event_details() -> None:
    records = [
        r for name in ("CredentialChallenge", "CredentialVerification", "UserAuthentication") for r in _public(name)
    ]
    outcomes = {r["serviceEventDetails"][r["eventName"]] for r in records if r.get("serviceEventDetails")}
    assert outcomes == {"Success", "Failure"}  # the corpus has a failed one: it must not say Success

    for record in records:
        event = _ocsf(record)
        assert event["class_uid"] == 3002
        assert event["status"] == (record.get("serviceEventDetails") or {}).get(record["eventName"], "Success")


def test_sign_in_destination_is_where_the_user_signed_in_to() -> None:
    [portal, *_] = _public("UserAuthentication")
    console = next(r for r in _public("ConsoleLogin") if "LoginTo" in (r.get("additionalEventData") or {}))

    portal_event, console_event = _ocsf(portal), _ocsf(console)

    assert portal_event["dst_endpoint"] == {
        "svc_name": "https://d-1234567890.awsapps.com/start/",  # the one-time state token stays unmapped
        "hostname": "d-1234567890.awsapps.com",
    }
    assert console_event["dst_endpoint"]["svc_name"] == console["additionalEventData"]["LoginTo"].partition("?")[0]
    assert console_event["dst_endpoint"]["hostname"].endswith("console.aws.amazon.com")


def test_sign_in_user_name_from_additional_event_data() -> None:
    record = _with_identity(
        {"type": "IdentityCenterUser", "accountId": "123456789012"},
        eventSource="signin.amazonaws.com",
        eventName="UserAuthentication",
        eventType="AwsServiceEvent",
        additionalEventData={"UserName": "jane@example.com", "CredentialType": "PASSWORD"},
        serviceEventDetails={"UserAuthentication": "Failure"},
    )

    event = _ocsf(record)

    assert event["status"] == "Failure"
    assert event["user"]["name"] == event["actor"]["user"]["name"] == "jane@example.com"
    assert event["user"]["email_addr"] == "jane@example.com"


# ------------------------------------------------------------------------------------------------ Account Change


def test_created_role_is_the_changed_user_with_its_ids() -> None:
    created = [r for r in _public("CreateRole") if (r.get("responseElements") or {}).get("role")]
    assert created

    for record in created:
        event = _ocsf(record)
        role = record["responseElements"]["role"]
        assert (event["class_uid"], event["activity_name"]) == (3001, "Create")
        assert event["user"] == event["user_result"]
        assert (event["user"]["type"], event["user"]["name"]) == ("Role", role["roleName"])
        assert (event["user"]["uid"], event["user"]["uid_alt"]) == (role["arn"], role["roleId"])


def test_created_user_ids_are_in_user(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    [record] = _corpus(corpus_records, eventName="CreateUser")

    user = _ocsf(record)["user"]

    assert (user["uid"], user["uid_alt"]) == ("arn:aws:iam::123456789012:user/Bob", "EXAMPLEUSERID")


POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.mark.parametrize(
    ("name", "parameters", "activity", "user", "policy"),
    [
        ("DeleteRole", {"roleName": "ops"}, "Delete", {"type": "Role", "name": "ops"}, None),
        ("UpdateRole", {"roleName": "ops", "maxSessionDuration": 7200}, "UpdateRole", {"name": "ops"}, None),
        ("UpdateAssumeRolePolicy", {"roleName": "ops", "policyDocument": "{}"}, "UpdateAssumeRolePolicy",
         {"name": "ops"}, None),
        ("AttachRolePolicy", {"roleName": "ops", "policyArn": POLICY}, "Attach Policy", {"name": "ops"},
         {"name": "ReadOnlyAccess", "uid": POLICY}),
        ("DeleteRolePolicy", {"roleName": "ops", "policyName": "inline"}, "Detach Policy", {"name": "ops"},
         {"name": "inline"}),
        ("PutRolePermissionsBoundary", {"roleName": "ops", "permissionsBoundary": POLICY}, "Attach Policy",
         {"name": "ops"}, {"name": "ReadOnlyAccess", "uid": POLICY}),
        ("DeleteUserPermissionsBoundary", {"userName": "bob"}, "Detach Policy", {"type": "IAMUser", "name": "bob"},
         None),
        ("DeleteServiceLinkedRole", {"roleName": "AWSServiceRoleForSupport"}, "Delete",
         {"name": "AWSServiceRoleForSupport"}, None),
        ("TagUser", {"userName": "bob", "tags": [{"key": "team", "value": "ops"}]}, "TagUser", {"name": "bob"}, None),
        ("AddRoleToInstanceProfile", {"roleName": "ops", "instanceProfileName": "web"}, "AddRoleToInstanceProfile",
         {"name": "ops"}, None),
        ("CreateAccountAlias", {"accountAlias": "example"}, "CreateAccountAlias", {}, None),
        ("UpdateAccountPasswordPolicy", {"minimumPasswordLength": 14}, "UpdateAccountPasswordPolicy", {}, None),
        ("CreateVirtualMFADevice", {"virtualMFADeviceName": "bob"}, "CreateVirtualMFADevice", {}, None),
        ("DeleteAccessKey", None, "Delete", {"name": "Alice"}, None),  # no userName: the caller's own key
        ("CreateUser", {"userName": "jane@example.com"}, "Create",
         {"name": "jane@example.com", "email_addr": "jane@example.com"}, None),
    ],
)  # fmt: skip
def test_role_user_and_account_changes(
    name: str, parameters: Any, activity: str, user: dict[str, str], policy: dict[str, str] | None
) -> None:
    event = _ocsf(_iam(name, parameters))

    assert (event["class_uid"], event["activity_name"]) == (3001, activity)
    assert event["user"]["account"] == {"uid": "123456789012"}
    assert user.items() <= event["user"].items()
    assert event.get("policy") == policy
    if not user:  # account-wide: the account only, not the caller
        assert event["user"] == {"account": {"uid": "123456789012"}}


def test_a_rename_names_the_new_user_in_the_result() -> None:
    event = _ocsf(_iam("UpdateUser", {"userName": "bob", "newUserName": "robert"}))

    assert (event["activity_id"], event["activity_name"]) == (99, "UpdateUser")
    assert event["user"]["name"] == "bob"
    assert event["user_result"] == {
        "type": "IAMUser",
        "type_id": 1,
        "name": "robert",
        "account": {"uid": "123456789012"},
    }


def test_a_change_logged_without_parameters_does_not_name_the_caller() -> None:
    """A failed call can be logged with requestParameters null: whom it targeted is unknown, not the caller."""
    record = next(r for r in _public("PutRolePolicy") if r.get("requestParameters") is None)

    event = _ocsf(record)

    assert (event["class_uid"], event["status"]) == (3001, "Failure")
    assert event["user"] == {"account": {"uid": record["recipientAccountId"]}}


@pytest.mark.parametrize("name", ["EmailUpdated", "AccountNameUpdated", "PasswordUpdated"])
def test_root_console_changes_are_account_changes_of_the_root(
    corpus_records: list[tuple[str, dict[str, Any]]], name: str
) -> None:
    record = copy.deepcopy(_corpus(corpus_records, eventName="PasswordUpdated")[0])
    record["eventName"] = name

    event = _ocsf(record)

    assert event["class_uid"] == 3001
    assert event["activity_name"] == ("Password Change" if name == "PasswordUpdated" else name)
    assert event["user"]["type"] == "Root"
    assert event["unmapped"]["classification"]["category"] == ("iam" if name == "PasswordUpdated" else "account")


# ------------------------------------------------------------------------------------------------ Group Management


def test_add_user_to_group_names_the_group_and_the_member(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    [record] = _corpus(corpus_records, eventName="AddUserToGroup")

    event = _ocsf(record)

    assert (event["class_uid"], event["type_name"]) == (3006, "Group Management: Add User")
    assert event["group"] == {"name": "admin"}
    assert event["user"] == {"type": "IAMUser", "type_id": 1, "name": "Bob", "account": {"uid": "123456789012"}}


@pytest.mark.parametrize(
    ("name", "parameters", "response", "activity", "group", "privileges"),
    [
        ("CreateGroup", {"groupName": "ops"},
         {"group": {"groupName": "ops", "groupId": "AGPAEXAMPLE", "arn": "arn:aws:iam::123456789012:group/ops"}},
         "Create", {"name": "ops", "uid": "arn:aws:iam::123456789012:group/ops"}, None),
        ("DeleteGroup", {"groupName": "ops"}, None, "Delete", {"name": "ops"}, None),
        ("UpdateGroup", {"groupName": "ops", "newGroupName": "sre"}, None, "UpdateGroup", {"name": "ops"}, None),
        ("RemoveUserFromGroup", {"groupName": "ops", "userName": "bob"}, None, "Remove User", {"name": "ops"}, None),
        ("AttachGroupPolicy", {"groupName": "ops", "policyArn": POLICY}, None, "Assign Privileges", {"name": "ops"},
         [POLICY]),
        ("PutGroupPolicy", {"groupName": "ops", "policyName": "inline", "policyDocument": "{}"}, None,
         "Assign Privileges", {"name": "ops"}, ["inline"]),
        ("DetachGroupPolicy", {"groupName": "ops", "policyArn": POLICY}, None, "Revoke Privileges", {"name": "ops"},
         [POLICY]),
        ("DeleteGroupPolicy", {"groupName": "ops", "policyName": "inline"}, None, "Revoke Privileges",
         {"name": "ops"}, ["inline"]),
    ],
)  # fmt: skip
def test_group_changes_are_group_management(
    name: str, parameters: Any, response: Any, activity: str, group: dict[str, str], privileges: list[str] | None
) -> None:
    event = _ocsf(_iam(name, parameters, response))

    assert (event["class_uid"], event["activity_name"]) == (3006, activity)
    assert event["group"] == group
    assert event.get("privileges") == privileges
    assert event.get("user", {}).get("name") == parameters.get("userName")
    assert event["actor"]["user"]["name"] == "Alice"


def test_unexpected_shapes_of_sts_and_group_parts_are_left_unmapped() -> None:
    assumed = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="sts.amazonaws.com", eventName="AssumeRole")
    assumed.update(requestParameters={"roleArn": 7}, responseElements={"credentials": "x"})
    group = _iam("CreateGroup", ["ops"], {"group": "ops"})
    sign_in = _with_identity(DOCUMENTED_IAM_USER_IDENTITY, eventSource="signin.amazonaws.com", eventName="ConsoleLogin")
    sign_in.update(additionalEventData={"LoginTo": 5}, serviceEventDetails="Failure")

    assert _ocsf(assumed)["user"] == {"type": "AssumedRole", "type_id": 99}
    assert _ocsf(group)["group"] == {}  # required by the class: written, empty
    assert _ocsf(sign_in)["status"] == "Success"


def test_validated_events_keep_their_shard_defaults() -> None:
    """The IAM classes carry the cloud profile like API Activity: cloud.account falls back to the shard's."""
    record = _iam("CreateGroup", {"groupName": "ops"})
    del record["recipientAccountId"]

    event = _ocsf(record)

    validate_ocsf(event)
    assert event["cloud"]["account"] == {"uid": SHARD.account_id}

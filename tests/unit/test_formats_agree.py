"""The native format and OCSF tell the same story (issue 14, point 8): a call that failed is a failure in both,
and both name the principal the same way (an AssumedRole session by its session name, the role as its issuer).
Checked over every record of the public corpus, and on the shapes that used to disagree."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from ingester.codec.decode import decode_records
from ingester.codec.normalize import Origin, to_event
from ingester.codec.ocsf import to_ocsf

from .corpus import DOCUMENTED_ASSUMED_ROLE_IDENTITY, INLINE_ENVELOPE, public_lines, record_bytes

_OUTCOME_OF_STATUS = {1: "success", 2: "failure", 99: "other"}
_ORIGIN = Origin(bucket="b", key="k")


def _both(line: bytes) -> tuple[Any, dict[str, Any]]:
    decoded = decode_records([msgspec.Raw(line)])
    [(raw, record)] = decoded.records
    native = to_event(record, raw, account_id="111122223333", region="us-east-1", origin=_ORIGIN)
    ocsf = json.loads(msgspec.json.encode(to_ocsf(record, raw, account_id="111122223333", region="us-east-1")))
    return native, ocsf


def test_every_public_record_has_one_outcome_and_one_actor_name_in_both_formats() -> None:
    lines = public_lines()
    if not lines:
        pytest.skip("the public corpus is absent")
    disagreements = []
    for line in lines:
        decoded = decode_records([msgspec.Raw(line)])
        if decoded.rejected:
            continue  # test_decode covers the records that do not decode
        native, ocsf = _both(line)
        user = ocsf["actor"].get("user", {})
        if native.outcome != _OUTCOME_OF_STATUS[ocsf["status_id"]] or native.actor.name != user.get("name", ""):
            disagreements.append((line[:120], native.outcome, ocsf["status_id"], native.actor.name, user))
    assert disagreements == []


@pytest.mark.parametrize(
    "failure",
    [
        {"errorMessage": "Failed authentication", "responseElements": {"ConsoleLogin": "Failure"}},
        {"errorMessage": "Failed authentication"},
        {"responseElements": {"ConsoleLogin": "Failure"}},
    ],
    ids=["both", "errorMessage-only", "responseElements-only"],
)
def test_a_failed_console_login_without_error_code_is_a_failure_in_both(failure: dict[str, Any]) -> None:
    record = {
        **INLINE_ENVELOPE,
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "userName": "alice"},
        **failure,
    }

    native, ocsf = _both(record_bytes(record))

    assert native.outcome == "failure"
    assert (ocsf["status_id"], ocsf["status"]) == (2, "Failure")


@pytest.mark.parametrize(
    ("event_name", "part", "result", "outcome", "status_id"),
    [
        ("ConsoleLogin", "responseElements", "Success", "success", 1),
        ("CredentialVerification", "serviceEventDetails", "Failure", "failure", 2),
        ("CredentialChallenge", "serviceEventDetails", "Success", "success", 1),
    ],
)
def test_a_sign_in_result_without_error_code_is_the_outcome_in_both(
    event_name: str, part: str, result: str, outcome: str, status_id: int
) -> None:
    record = {
        **INLINE_ENVELOPE,
        "eventSource": "signin.amazonaws.com",
        "eventName": event_name,
        part: {event_name: result},
    }

    native, ocsf = _both(record_bytes(record))

    assert native.outcome == outcome
    assert ocsf["status_id"] == status_id


def test_assumed_role_session_name_is_the_actor_name_in_both_and_the_role_its_issuer() -> None:
    record = {**INLINE_ENVELOPE, "userIdentity": DOCUMENTED_ASSUMED_ROLE_IDENTITY}

    native, ocsf = _both(record_bytes(record))

    assert native.actor.name == ocsf["actor"]["user"]["name"] == "MySessionName"
    assert native.actor.session_issuer_arn == ocsf["actor"]["session"]["issuer"]
    assert native.actor.session_issuer_name == "RoleToBeAssumed"

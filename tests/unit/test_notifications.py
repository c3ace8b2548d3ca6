"""Notification parsing, fed by the real shapes in ../shared/corpus/notifications/."""

from __future__ import annotations

import json

import pytest

from ingester.sources.notifications import Notice, NotificationError, ObjectRef, parse_body

from .corpus import CORPUS_DIR

CORPUS = CORPUS_DIR / "notifications"


def load(name: str) -> dict[str, object]:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file missing: {path}")
    return json.loads(path.read_text())


def body(name: str) -> str:
    return json.dumps(load(name))


def test_s3_event_notification() -> None:
    notice = parse_body(body("s3-event-object-created.json"))
    assert notice == Notice(
        "objects", (ObjectRef("lambda-artifacts-deafc19498e3f2df", "b21b84d653bb07b05b1e6b33684dc11b", 1305107),)
    )


def test_s3_event_keys_are_url_decoded() -> None:
    assert parse_body(body("s3-event-urlencoded-key.json")).objects[0].key == "my file=a.json.gz"


def test_eventbridge_keys_are_taken_as_is() -> None:
    assert parse_body(body("eventbridge-object-created-plus-key.json")).objects == (
        ObjectRef("ct-siem-sync", "my+file.json.gz", 4096),
    )


@pytest.mark.parametrize(
    "name",
    [
        "eventbridge-object-deleted.json",
        "eventbridge-object-restore-completed.json",
        "eventbridge-object-annotation-created.json",
    ],
)
def test_eventbridge_events_that_create_nothing_are_ignored(name: str) -> None:
    assert parse_body(body(name)) == Notice("ignored")


def test_unsupported_eventbridge_version_is_an_error() -> None:
    with pytest.raises(NotificationError, match=r"event-version 2\.0") as error:
        parse_body(body("eventbridge-object-created-unsupported-version.json"))
    assert error.value.reason == "notification_unsupported"


def test_test_events_raw_and_sns_wrapped() -> None:
    assert parse_body(body("s3-test-event.json")).kind == "test"
    assert parse_body(body("sns-s3-test-event.json")).kind == "test"


def test_sns_wrapped_and_sqs_lambda_batches() -> None:
    expected = ("lambda-artifacts-deafc19498e3f2df", "b21b84d653bb07b05b1e6b33684dc11b")
    for name in ("sns-s3-event.json", "sqs-s3-event.json", "sqs-sns-event.json"):
        notice = parse_body(body(name))
        assert [(o.bucket, o.key) for o in notice.objects] == [expected], name


def test_each_message_of_a_partly_garbage_batch() -> None:
    records = load("sqs-batch-partial-garbage.json")["Records"]
    assert isinstance(records, list)
    outcomes = []
    for record in records:
        try:
            outcomes.append(parse_body(record["body"]).kind)
        except NotificationError as exc:
            outcomes.append(exc.reason)
    assert outcomes[0] == "objects" and "notification_not_json" in outcomes


def test_cloudtrail_sns_delivery_notification() -> None:
    inner = {"s3Bucket": "org-trail-logs", "s3ObjectKey": ["AWSLogs/1/CloudTrail/us-east-1/a.json.gz", "b.json.gz"]}
    envelope = {"Type": "Notification", "Message": json.dumps(inner)}
    assert [o.key for o in parse_body(json.dumps(envelope)).objects] == [
        "AWSLogs/1/CloudTrail/us-east-1/a.json.gz",
        "b.json.gz",
    ]


@pytest.mark.parametrize("text", ["[]", "42", '{"hello": "world"}', "{not json"])
def test_garbage_is_a_clear_error(text: str) -> None:
    with pytest.raises(NotificationError):
        parse_body(text)

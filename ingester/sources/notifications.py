"""SQS message bodies -> the S3 objects they announce. Pure: no I/O.

Accepted shapes, possibly nested (an SNS envelope's ``Message`` is itself one of these, as a string):
- S3 event notifications ``{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}`` (keys URL-encoded, '+' = ' ');
- CloudTrail's own SNS delivery notification ``{"s3Bucket": "...", "s3ObjectKey": ["...", ...]}``;
- EventBridge "Object Created" events (``detail.bucket.name``, ``detail.object.key``, not URL-encoded);
- SNS envelopes ``{"Type": "Notification", "Message": "..."}`` and Lambda-style batches whose records carry a
  ``body`` or an ``Sns`` object;
- ``s3:TestEvent`` (S3 sends one when notifications are configured): recognised and ignored.
Anything else is a :class:`NotificationError` with a reason: the message is dead-lettered and deleted.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote_plus

import msgspec
import orjson

from ingester.errors import DecodeError

SUPPORTED_EVENTBRIDGE_VERSIONS = ("1.0", "1.1")


class ObjectRef(msgspec.Struct, frozen=True):
    bucket: str
    key: str
    size: int = 0


class Notice(msgspec.Struct, frozen=True):
    # "objects": new objects to collect; "test": s3:TestEvent; "ignored": an event that announces no new object
    kind: Literal["objects", "test", "ignored"]
    objects: tuple[ObjectRef, ...] = ()


class NotificationError(DecodeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_body(body: str | bytes) -> Notice:
    """One SQS message body -> what it announces."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotificationError("notification_not_json", f"{exc}: {str(body)[:200]!r}") from exc
    return _parse(document, depth=0)


def _parse(document: Any, depth: int) -> Notice:
    if depth > 4:
        raise NotificationError("notification_unsupported", "envelopes nested too deeply")
    if not isinstance(document, dict):
        raise NotificationError("notification_unsupported", f"expected a JSON object, got {type(document).__name__}")
    if document.get("Event") == "s3:TestEvent":
        return Notice("test")
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return _parse(_loads(document["Message"]), depth + 1)
    if "s3Bucket" in document and "s3ObjectKey" in document:
        keys = document["s3ObjectKey"]
        keys = [keys] if isinstance(keys, str) else keys
        return Notice("objects", tuple(ObjectRef(str(document["s3Bucket"]), str(key)) for key in keys))
    if document.get("source") == "aws.s3" and "detail" in document:
        return _eventbridge(document)
    if isinstance(document.get("Records"), list):
        return _records(document["Records"], depth)
    raise NotificationError("notification_unsupported", f"unknown notification with keys {sorted(document)[:8]}")


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotificationError("notification_not_json", f"SNS Message: {exc}") from exc


def _records(records: list[Any], depth: int) -> Notice:
    objects: list[ObjectRef] = []
    kinds: set[str] = set()
    for record in records:
        if not isinstance(record, dict):
            raise NotificationError("notification_unsupported", "a record is not a JSON object")
        if "s3" in record and str(record.get("eventSource", "")) == "aws:s3":
            if str(record.get("eventName", "")).startswith("ObjectCreated:"):
                s3 = record["s3"]
                key = unquote_plus(str(s3["object"]["key"]))
                objects.append(ObjectRef(str(s3["bucket"]["name"]), key, int(s3["object"].get("size", 0))))
            kinds.add("ignored")
            continue
        inner = record.get("Sns") or ({"body": record["body"]} if "body" in record else None)
        if isinstance(inner, dict):
            nested = _parse(_loads(inner["body"]) if "body" in inner else inner_message(inner), depth + 1)
            kinds.add(nested.kind)
            objects.extend(nested.objects)
            continue
        raise NotificationError("notification_unsupported", f"unknown record with keys {sorted(record)[:8]}")
    if objects:
        return Notice("objects", tuple(objects))
    return Notice("test" if kinds == {"test"} else "ignored")


def inner_message(sns: dict[str, Any]) -> Any:
    """The JSON inside a Lambda-style ``Sns`` object."""
    message = sns.get("Message")
    if not isinstance(message, str):
        raise NotificationError("notification_unsupported", "Sns record without a Message string")
    return _loads(message)


def _eventbridge(document: dict[str, Any]) -> Notice:
    detail = document["detail"]
    if document.get("detail-type") != "Object Created":
        return Notice("ignored")
    version = str(detail.get("event-version", ""))
    if version not in SUPPORTED_EVENTBRIDGE_VERSIONS:
        raise NotificationError("notification_unsupported", f"EventBridge S3 event-version {version}")
    obj = detail["object"]
    return Notice("objects", (ObjectRef(str(detail["bucket"]["name"]), str(obj["key"]), int(obj.get("size", 0))),))

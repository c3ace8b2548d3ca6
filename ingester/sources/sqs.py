"""Notification mode: receive S3 / CloudTrail notifications from SQS and hand the announced files to their
shard jobs. The only module that talks to SQS.

A message is deleted only after every file it announces is settled (Kafka acknowledged every record, or the
file was dead-lettered): a crash before that leaves the message in the queue and SQS redelivers it. While its
files are processed the message's visibility is extended every half period. Test events and events that
announce nothing are deleted; unparseable messages and messages received more than ``max_receives`` times are
dead-lettered, then deleted. A file whose shard is unknown (discovery has not found its trail yet) leaves the
message in the queue: it comes back after the visibility timeout, and eventually counts as poison.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from ingester.config import NotificationSettings
from ingester.errors import IngesterError, SourceError
from ingester.models import DeadLetter
from ingester.sources.notifications import NotificationError, ObjectRef, parse_body

log = structlog.get_logger("ingester.sources.sqs")

# Resolves to True when the file is settled for good; None when the key is not a log file of any known shard
# kind (digests, insights: nothing to collect); raises UnknownShard when it is a log file of a shard not running.
Submit = Callable[[ObjectRef], Awaitable["asyncio.Future[bool] | None"]]
DeadLetterFn = Callable[[DeadLetter], Awaitable[None]]


class UnknownShard(SourceError):
    """A log file of a shard that no job collects (yet)."""


class SqsNotifications:
    def __init__(self, client: Any, settings: NotificationSettings, submit: Submit, dead_letter: DeadLetterFn) -> None:
        self._client = client
        self._settings = settings
        self._submit = submit
        self._dead_letter = dead_letter
        # Messages being worked on at once: bounds the memory of pending handlers.
        self._slots = asyncio.Semaphore(10 * settings.receivers * 2)
        self.deleted = 0
        self.received = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(self._settings.receivers):
                group.create_task(self._receive(stop, group), name=f"sqs-receiver-{n}")

    async def _receive(self, stop: asyncio.Event, group: asyncio.TaskGroup) -> None:
        s = self._settings
        while not stop.is_set():
            try:
                response = await self._client.receive_message(
                    QueueUrl=s.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=s.wait_seconds,
                    VisibilityTimeout=s.visibility_timeout_seconds,
                    AttributeNames=["ApproximateReceiveCount"],
                )
            except (ClientError, BotoCoreError, OSError) as exc:
                log.warning("sqs_receive_failed", queue=s.queue_url, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5)
                continue
            for message in response.get("Messages", ()):
                self.received += 1
                await self._slots.acquire()
                group.create_task(self._handle_and_release(message), name=f"sqs-{message['MessageId']}")

    async def _handle_and_release(self, message: dict[str, Any]) -> None:
        try:
            await self._handle(message)
        finally:
            self._slots.release()

    async def _handle(self, message: dict[str, Any]) -> None:
        handle = message["ReceiptHandle"]
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            notice = parse_body(message.get("Body", ""))
        except NotificationError as exc:
            await self._poison(message, exc.reason, exc.detail)
            return
        if notice.kind != "objects":
            await self._delete(handle)
            return
        if receives > self._settings.max_receives:
            keys = ", ".join(ref.key for ref in notice.objects)[:2000]
            await self._poison(message, "poison_message", f"received {receives} times; files: {keys}")
            return
        try:
            waiters = [w for w in [await self._submit(ref) for ref in notice.objects] if w is not None]
        except UnknownShard as exc:
            log.warning("notification_for_unknown_shard", message_id=message["MessageId"], error=str(exc))
            return
        except SourceError as exc:  # scale-out: an announcement Kafka did not acknowledge; the message comes back
            log.warning("notification_not_handed_over", message_id=message["MessageId"], error=str(exc))
            return
        if await self._await_settled(handle, waiters):
            await self._delete(handle)

    async def _await_settled(self, handle: str, waiters: list[asyncio.Future[bool]]) -> bool:
        """Wait for every file, extending the message's visibility meanwhile; False if one errored."""
        period = self._settings.visibility_timeout_seconds / 2
        pending = set(waiters)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=period)
            if pending:
                try:
                    await self._client.change_message_visibility(
                        QueueUrl=self._settings.queue_url,
                        ReceiptHandle=handle,
                        VisibilityTimeout=self._settings.visibility_timeout_seconds,
                    )
                except (ClientError, BotoCoreError, OSError) as exc:
                    log.warning("sqs_visibility_extension_failed", error=str(exc))
        return all(waiter.result() for waiter in waiters)

    async def _poison(self, message: dict[str, Any], reason: str, detail: str) -> None:
        letter = DeadLetter(
            shard_id="",
            bucket="",
            key=f"sqs:{message['MessageId']}",
            reason=reason,
            detail=detail,
            record=str(message.get("Body", ""))[:65536],
        )
        try:
            await self._dead_letter(letter)
        except IngesterError as exc:
            # Keep the message: it comes back after the visibility timeout and is tried again.
            log.warning("notification_dead_letter_failed", message_id=message["MessageId"], error=str(exc))
            return
        log.warning("notification_dead_lettered", message_id=message["MessageId"], reason=reason)
        await self._delete(message["ReceiptHandle"])

    async def _delete(self, handle: str) -> None:
        try:
            await self._client.delete_message(QueueUrl=self._settings.queue_url, ReceiptHandle=handle)
            self.deleted += 1
        except (ClientError, BotoCoreError, OSError) as exc:
            # Not fatal: the message comes back and its files are found settled.
            log.warning("sqs_delete_failed", error=str(exc))

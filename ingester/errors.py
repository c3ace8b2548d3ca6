"""The one exception tree of ingester.

    IngesterError                     base; ``retriable`` says whether trying the same thing again can succeed
    ├── ConfigError                   bad settings; the process exits with the message (never retriable)
    ├── DiscoveryError                Organizations / STS / CloudTrail control-plane failure
    ├── SourceError                   one S3 object or listing could not be read
    │   └── ObjectGoneError           404/403 on one key: permanent, dead-lettered, the shard moves on
    ├── DecodeError                   one object's bytes are not a CloudTrail log (corrupt gzip, not JSON, ...)
    ├── SinkError                     the sink did not acknowledge (Kafka unavailable, timeout, ...)
    ├── CheckpointError               the checkpoint store cannot be read or written
    └── DrainTimeoutError             SIGTERM's drain outlasted drain_timeout_seconds (e.g. Kafka down); exits

botocore, aiokafka and msgspec exceptions never cross a module boundary: the module that calls the library
translates them here, most specific first, with the S3 key or topic in the message (``raise X(...) from exc``).
Why one tree: the pipeline makes exactly one decision per failure (retry the object, dead-letter it, or stop),
and it makes it from ``retriable`` and the class, not from a zoo of foreign types.
"""

from __future__ import annotations


class IngesterError(Exception):
    """Base of every error ingester raises on purpose."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class ConfigError(IngesterError):
    """Settings are invalid; names the key and the problem."""


class DiscoveryError(IngesterError):
    """Listing accounts, assuming a role or describing trails failed."""

    retriable = True


class SourceError(IngesterError):
    """Reading from S3 failed (throttling, 5xx, network); retriable unless a subclass says otherwise.

    ``code`` is S3's error code (``SlowDown``, ``NoSuchBucket``) or the transport error's class name: a bounded
    label for the shard's fault metric and health detail."""

    retriable = True

    def __init__(self, message: str, *, retriable: bool | None = None, code: str = "") -> None:
        super().__init__(message, retriable=retriable)
        self.code = code


class ObjectGoneError(SourceError):
    """The object is missing or forbidden: retrying will not help, so it is dead-lettered."""

    retriable = False


class DecodeError(IngesterError):
    """The object is not a readable CloudTrail log file. Permanent: the same bytes fail the same way."""


class SinkError(IngesterError):
    """The sink did not acknowledge a batch; the object is retried, the checkpoint does not move."""

    retriable = True


class CheckpointError(IngesterError):
    """The checkpoint store failed; fatal, because continuing would risk re-sending or skipping."""


class DrainTimeoutError(IngesterError):
    """The ordered drain did not finish in time (objects still unacknowledged, usually Kafka unreachable).

    The process exits anyway: the checkpoint holds only acknowledged objects, so the next start collects the
    rest again (duplicates at most, never loss)."""

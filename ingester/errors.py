"""The one exception tree of ingester.

    IngesterError                     base; ``retriable`` says whether trying the same thing again can succeed
    ├── ConfigError                   bad settings; the process exits with the message (never retriable)
    ├── DiscoveryError                Organizations / STS / CloudTrail control-plane failure
    ├── SourceError                   one S3 object or listing could not be read
    │   └── ObjectGoneError           404/403 on one key: permanent, dead-lettered, the shard moves on
    ├── DecodeError                   one object's bytes are not a CloudTrail log (corrupt gzip, not JSON, ...)
    ├── SinkError                     the sink did not acknowledge (Kafka unavailable, timeout, ...)
    ├── CheckpointError               the checkpoint store cannot be read or written
    │   └── CheckpointLockedError     another collector holds the store's lock (the message names it)
    ├── OwnershipLost                 scale-out: the object's shard group moved to another replica mid-object
    └── DrainTimeoutError             SIGTERM's drain outlasted drain_timeout_seconds (e.g. Kafka down); exits

botocore, aiokafka and msgspec exceptions never cross a module boundary: the module that calls the library
translates them here, most specific first, with the S3 key or topic in the message (``raise X(...) from exc``).
Why one tree: the pipeline makes exactly one decision per failure (retry the object, dead-letter it, or stop),
and it makes it from ``retriable`` and the class, not from a zoo of foreign types.

The same tree decides the process exit code: each class carries an ``exit_code`` from :class:`ExitCode` (the
table in docs/exit-codes.md), read by the command line and by the parent of ``run --workers N`` through
:func:`exit_code_for`, so one failure exits with one code however the process was started.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every code an ingester command exits with, besides 128+N (killed by, or exiting at once on, signal N).

    A script or an orchestrator tells "fix the settings" from "AWS or Kafka is down" from "there is nothing
    here" without parsing the message; docs/exit-codes.md says which command returns which."""

    OK = 0
    INTERNAL = 1  # a bug: an exception outside the tree (it prints a traceback)
    CONFIG = 2  # bad settings or command-line usage; retrying the same command cannot succeed
    NOTHING_TO_COLLECT = 3  # run --once, backfill, check-config, discover: discovery found no shard
    AWS = 4  # credentials, Organizations, AssumeRole, CloudTrail, S3 (DiscoveryError, SourceError)
    SINK = 5  # Kafka (or the file sink) unreachable or not acknowledging (SinkError)
    CHECKPOINT = 6  # the checkpoint store cannot be read or written (CheckpointError)
    INCOMPLETE = 7  # ran to the end, but objects were left undelivered (retried next run) or records missed


class IngesterError(Exception):
    """Base of every error ingester raises on purpose."""

    retriable: bool = False
    # An IngesterError that is none of the subclasses reaching the top is unexpected: treat it as a bug.
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class ConfigError(IngesterError):
    """Settings are invalid; names the key and the problem."""

    exit_code = ExitCode.CONFIG


class DiscoveryError(IngesterError):
    """Listing accounts, assuming a role or describing trails failed."""

    retriable = True
    exit_code = ExitCode.AWS


class SourceError(IngesterError):
    """Reading from S3 failed (throttling, 5xx, network); retriable unless a subclass says otherwise.

    ``code`` is S3's error code (``SlowDown``, ``NoSuchBucket``) or the transport error's class name: a bounded
    label for the shard's fault metric and health detail."""

    retriable = True
    exit_code = ExitCode.AWS

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
    exit_code = ExitCode.SINK


class CheckpointError(IngesterError):
    """The checkpoint store failed; fatal, because continuing would risk re-sending or skipping."""

    exit_code = ExitCode.CHECKPOINT


class CheckpointLockedError(CheckpointError):
    """Another process holds the SQLite checkpoint's lock (checkpoint/lock.py); the message names its pid, host
    and start time. Same exit code as the store failing: this process cannot use the store, and retrying while
    the other one runs cannot help."""


class OwnershipLost(IngesterError):
    """Scale-out exactly-once: the object's shard group was released (a rebalance) or fenced (another replica
    took it) before its events were committed. The object errors here, its events are aborted with the
    transaction (or never sent), and the group's new owner collects it from the committed checkpoint."""

    retriable = False
    exit_code = ExitCode.INCOMPLETE


class DrainTimeoutError(IngesterError):
    """The ordered drain did not finish in time (objects still unacknowledged, usually Kafka unreachable).

    The process exits anyway: the checkpoint holds only acknowledged objects, so the next start collects the
    rest again (duplicates at most, never loss)."""

    # Not SINK: slow S3 reads outlast the drain too; "the next start collects the rest" is true of both, and the
    # message names the sink's last error.
    exit_code = ExitCode.INCOMPLETE


def ingester_errors(exc: BaseException) -> list[IngesterError] | None:
    """The errors of the tree that ``exc`` stands for: itself, or the leaves of a TaskGroup's exception group.

    None when any part is foreign: that is a bug, and the caller lets the traceback through."""
    if isinstance(exc, BaseExceptionGroup):
        found: list[IngesterError] = []
        for part in exc.exceptions:
            leaves = ingester_errors(part)
            if leaves is None:
                return None
            found.extend(leaves)
        return found
    return [exc] if isinstance(exc, IngesterError) else None


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of a process that ends with ``exc``: its first error's, or INTERNAL if any part is foreign.

    The first, because a TaskGroup lists its errors in the order they happened and later ones are usually the
    consequence (a failed sink makes the shard tasks fail too)."""
    errors = ingester_errors(exc)
    return errors[0].exit_code if errors else ExitCode.INTERNAL

"""Completeness: which log files a digest lists that the pipeline has not settled. Pure set arithmetic.

A digest lists the files CloudTrail *delivered* during its hour (``digestStartTime``..``digestEndTime``, by
delivery time, not event time), so the hour a file counts for is the digest's, whatever minute its name shows.
The comparison is by key: every file a digest lists lives in the trail's bucket, which is the shard's.
"""

from __future__ import annotations

from collections.abc import Set

import msgspec

from ingester.integrity.digest import Digest, LogFileEntry


class Completeness(msgspec.Struct, frozen=True, kw_only=True):
    """One digest's hour for one shard: how many files it lists, how many were settled, which were not."""

    expected: int
    collected: int
    # Keys in key order (= time order within a shard), so a report reads chronologically.
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def reconcile(digest: Digest, settled_keys: Set[str]) -> Completeness:
    """Compare the digest's ``logFiles`` with the keys the shard settled (delivered or dead-lettered).

    ``settled_keys`` may hold more than this hour (the shard's remembered window): only the digest's files
    count. A missing key should be fetched like a late file, then the hour reconciled again; an hour whose
    digest lists no files is complete with nothing expected, which is itself a signed statement.
    """
    expected = sorted({entry.s3_object for entry in digest.log_files})
    missing = [key for key in expected if key not in settled_keys]
    return Completeness(expected=len(expected), collected=len(expected) - len(missing), missing=missing)


def entries_by_key(digest: Digest) -> dict[str, LogFileEntry]:
    """The digest's entries by S3 key: the lookup a worker needs to check a fetched file's hash."""
    return {entry.s3_object: entry for entry in digest.log_files}

"""A local directory laid out like a CloudTrail bucket (``<root>/<S3 key>``): the same interface as S3Source.

Why it exists: to replay logs exported from a bucket (``aws s3 sync s3://trail-bucket/AWSLogs ./AWSLogs``) without
an S3 endpoint, and to let the benchmarks run the real ShardJob -> Worker -> sink pipeline with no S3 in the way,
so that what S3 costs can be told apart from what the pipeline costs.

It behaves as S3Source does for the job and the worker: a shard is listed day by day (``.../YYYY/MM/DD/``) in key
order, from the minute of ``start`` (keys strictly after the floor key, as S3's ``StartAfter``) through the day
after ``now``; ``start=None`` begins at the earliest stored day. A missing file is :class:`ObjectGoneError`
(dead-lettered), any other OS error a retriable :class:`SourceError`. File system calls run in worker threads so
the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path, PurePosixPath

from ingester.errors import ObjectGoneError, SourceError
from ingester.models import LogObject, Shard
from ingester.sources import list_in_order


class LocalSource:
    """Reads ``<root>/<key>`` files. Memory: one day's listing of one shard at a time (about 100 bytes a file;
    CloudTrail writes a few hundred files a day per account and region)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        # As S3Source: every call, and the listing calls among them.
        self.requests = 0
        self.list_requests = 0

    async def list_shard(self, shard: Shard, start: datetime | None, now: datetime) -> AsyncIterator[LogObject]:
        """Every file of the shard from ``start`` (None = earliest stored day) through tomorrow, in key order."""
        async for item in list_in_order(self, shard, start, now):
            yield item

    async def list_after(self, prefix: str, start_after: str | None) -> AsyncIterator[LogObject]:
        """Files whose key starts with the folder ``prefix`` (``/``-terminated) and sorts after ``start_after``."""
        self.requests += 1
        self.list_requests += 1
        try:
            found = await asyncio.to_thread(self._list_folder, prefix, start_after)
        except OSError as exc:
            raise SourceError(f"{self._root / prefix}: listing failed: {exc}") from exc
        for item in found:
            yield item

    async def earliest_day(self, shard: Shard, prefix: str | None = None) -> date | None:
        """First ``YYYY/MM/DD`` folder under the shard (or another dated prefix), None when there is none."""
        folder = self._root / (shard.log_prefix if prefix is None else prefix)
        parts: list[int] = []
        for _ in range(3):
            self.requests += 1
            self.list_requests += 1
            try:
                children = await asyncio.to_thread(_digit_folders, folder)
            except OSError as exc:
                raise SourceError(f"{folder}: listing failed: {exc}") from exc
            if not children:
                return None
            folder = folder / children[0]
            parts.append(int(children[0]))
        try:
            return date(parts[0], parts[1], parts[2])
        except ValueError:
            return None

    async def get(self, key: str) -> bytes:
        self.requests += 1
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise ObjectGoneError(f"{path}: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise SourceError(f"{path}: {type(exc).__name__}: {exc}") from exc

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise ObjectGoneError(f"{key!r}: not a key under {self._root}")
        return self._root.joinpath(*relative.parts)

    def _list_folder(self, prefix: str, start_after: str | None) -> list[LogObject]:
        found: list[LogObject] = []
        for entry in _files_under(self._root / prefix):
            key = Path(entry.path).relative_to(self._root).as_posix()
            if start_after is None or key > start_after:
                found.append(LogObject(key, entry.stat().st_size))
        found.sort(key=lambda item: item.key)  # str order is S3's UTF-8 byte order
        return found


def _files_under(folder: Path) -> list[os.DirEntry[str]]:
    """Regular files below ``folder``, at any depth (S3 lists a prefix recursively); none when it is missing."""
    try:
        with os.scandir(folder) as entries:
            children = list(entries)
    except FileNotFoundError:
        return []
    files: list[os.DirEntry[str]] = []
    for entry in children:
        if entry.is_dir(follow_symlinks=False):
            files.extend(_files_under(Path(entry.path)))
        elif entry.is_file():
            files.append(entry)
    return files


def _digit_folders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir() and entry.name.isdigit())
    except FileNotFoundError:
        return []

"""NDJSON file sink: the embedded default (``ingester demo``) and a debugging aid.

A write followed by flush() counts as the acknowledgement: the bytes are in the kernel, which survives a
process crash. Dead letters go to a sibling file so good events never mix with rejects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO

import msgspec

from ingester.errors import SinkError
from ingester.models import DeadLetter, OutboundRecord
from ingester.sinks import SinkStatistics

_ENCODER = msgspec.json.Encoder()


class FileSink:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._dead_path = path.with_name(path.name + ".dead-letter.ndjson")
        self._integrity_path = path.with_name(path.name + ".integrity.ndjson")
        self._out: IO[bytes] | None = None
        self._dead: IO[bytes] | None = None
        self._integrity: IO[bytes] | None = None
        self._records = self._bytes = self._batches = self._dead_letters = 0

    @property
    def dead_letter_path(self) -> Path:
        return self._dead_path

    @property
    def integrity_path(self) -> Path:
        return self._integrity_path

    async def start(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self._path.open("ab")
            self._dead = self._dead_path.open("ab")
            self._integrity = self._integrity_path.open("ab")
        except OSError as exc:
            raise SinkError(f"cannot open output file {self._path}: {exc}", retriable=False) from exc

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        if self._out is None:
            raise SinkError("file sink used before start()", retriable=False)
        payload = b"".join(record.value + b"\n" for record in records)
        try:
            self._out.write(payload)
            self._out.flush()
        except OSError as exc:
            raise SinkError(f"write to {self._path} failed: {exc}") from exc
        self._records += len(records)
        self._bytes += len(payload)
        self._batches += 1
        return []

    async def dead_letter(self, letter: DeadLetter) -> None:
        if self._dead is None:
            raise SinkError("file sink used before start()", retriable=False)
        try:
            self._dead.write(_ENCODER.encode(letter) + b"\n")
            self._dead.flush()
        except OSError as exc:
            raise SinkError(f"write to {self._dead_path} failed: {exc}") from exc
        self._dead_letters += 1

    async def report(self, key: bytes, value: bytes) -> None:
        if self._integrity is None:
            raise SinkError("file sink used before start()", retriable=False)
        try:
            self._integrity.write(value + b"\n")
            self._integrity.flush()
        except OSError as exc:
            raise SinkError(f"write to {self._integrity_path} failed: {exc}") from exc

    def unit(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def maintain(self) -> None:
        return None

    async def close(self) -> None:
        for handle in (self._out, self._dead, self._integrity):
            if handle is not None:
                handle.close()
        self._out = self._dead = self._integrity = None

    async def abort(self) -> None:
        await self.close()

    def statistics(self) -> SinkStatistics:
        return SinkStatistics(self._records, self._bytes, self._batches, self._dead_letters)

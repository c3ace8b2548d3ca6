"""NDJSON file sink: the embedded default (``ingester demo``) and a debugging aid.

A write followed by flush() counts as the acknowledgement: the bytes are in the kernel, which survives a
process crash. Dead letters go to a sibling file so good events never mix with rejects; events a ``[[routes]]``
entry sends to a named topic go to ``<path>.<topic>.ndjson``, the file sink's stand-in for a topic.
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
    def __init__(self, path: Path, *, routed_topics: Sequence[str] = ()) -> None:
        self._path = path
        self._routed_paths = {topic: path.with_name(f"{path.name}.{topic}.ndjson") for topic in routed_topics}
        self._routed: dict[str, IO[bytes]] = {}
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
            self._routed = {topic: routed.open("ab") for topic, routed in self._routed_paths.items()}
        except OSError as exc:
            raise SinkError(f"cannot open output file {self._path}: {exc}", retriable=False) from exc

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        if self._out is None:
            raise SinkError("file sink used before start()", retriable=False)
        by_topic: dict[str, list[bytes]] = {}
        for record in records:
            by_topic.setdefault(record.topic, []).append(record.value + b"\n")
        for topic, lines in by_topic.items():
            out, path = (self._out, self._path) if not topic else (self._routed[topic], self._routed_paths[topic])
            payload = b"".join(lines)
            try:
                out.write(payload)
                out.flush()
            except OSError as exc:
                raise SinkError(f"write to {path} failed: {exc}") from exc
            self._bytes += len(payload)
        self._records += len(records)
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

    def unit(self, shard_id: str = "") -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def maintain(self) -> None:
        return None

    async def close(self) -> None:
        for handle in (self._out, self._dead, self._integrity, *self._routed.values()):
            if handle is not None:
                handle.close()
        self._out = self._dead = self._integrity = None
        self._routed = {}

    async def abort(self) -> None:
        await self.close()

    def statistics(self) -> SinkStatistics:
        return SinkStatistics(self._records, self._bytes, self._batches, self._dead_letters)

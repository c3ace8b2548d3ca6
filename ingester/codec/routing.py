"""Routing: which topic each event goes to, or whether it is dropped or sampled, before anything is sent.

Why here, before Kafka: large organizations pay for every event they keep, and S3/Lambda data events, KMS Decrypt
and agent heartbeats can be most of the volume. A declarative table (``[[routes]]`` in the configuration) is
evaluated per record, first match wins; a record no route matches goes to ``kafka.topic``.

Cost: the conditions depend only on a few fields (source, name, readOnly, eventCategory, error present, account,
region, class), so the matching route is cached per combination of them; a record costs one tuple and one dict
lookup, and a configuration without routes costs nothing (the encoder skips routing). Sampling is deterministic
on the event id (CRC32), so a rerun keeps the same 1-in-N. A dropped record is still "delivered" for the
checkpoint: the object settles as a whole once the records kept are acknowledged.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Final

from ingester.codec.classification import classify_record
from ingester.codec.cloudtrail import RecordHead, as_bool
from ingester.config import RouteSettings

# A record routed to the default topic (kafka.topic), i.e. by no configured route.
DEFAULT_ROUTE: Final = "default"
# The route cache holds one entry per distinct combination of the matched fields: bounded, since an account's
# API vocabulary is; cleared when full so hostile input cannot grow it without end.
CACHE_ENTRIES: Final = 65_536

# (eventSource, eventName, readOnly as written, eventCategory, error present, account, region, OCSF class uid)
_Key = tuple[str, str, "bool | str | None", str, bool, str, str, int]


def route_key(record: RecordHead, account: str, region: str, class_uid: int) -> _Key:
    """What a route's conditions can depend on: records with the same key take the same route."""
    return (
        record.event_source,
        record.event_name,
        record.read_only,
        record.event_category,
        record.error_code != "",
        account,
        record.aws_region or region,
        class_uid,
    )


def _any(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def matches(route: RouteSettings, record: RecordHead, key: _Key) -> bool:
    """All the route's conditions hold (an empty condition holds for any record). Pure."""
    source, name, written, category, error, account, region, class_uid = key
    read_only = as_bool(written)
    if route.event_source and not _any(route.event_source, source):
        return False
    if route.event_name and not _any(route.event_name, name):
        return False
    if route.read_only is not None and read_only is not route.read_only:
        return False
    if route.event_category and category not in route.event_category:
        return False
    if route.error is not None and error is not route.error:
        return False
    if route.account and not _any(route.account, account):
        return False
    if route.region and not _any(route.region, region):
        return False
    if route.class_uid and class_uid not in route.class_uid:
        return False
    if route.classification:
        kind = classify_record(record)
        if not _any(route.classification, f"{kind.category}/{kind.subtype}"):
            return False
    return True


class Router:
    """The compiled ``[[routes]]`` table. :meth:`route` gives each record its route's index; ``len(routes)`` is
    the default route (``kafka.topic``)."""

    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self.routes = tuple(routes)
        self.names = (*(route.name for route in self.routes), DEFAULT_ROUTE)
        # Per route index: the topic ("" = the default topic), None for a drop.
        self.topics: tuple[str | None, ...] = (
            *(None if route.action == "drop" else route.topic for route in self.routes),
            "",
        )
        # Per route index: keep 1 in N; 0 = drop every record.
        self.samples = (*(0 if route.action == "drop" else route.sample for route in self.routes), 1)
        self.cache: dict[_Key, int] = {}

    def route(self, record: RecordHead, account: str, region: str, class_uid: int) -> int:
        """The index of the first route matching the record (``len(routes)`` when none does)."""
        key = route_key(record, account, region, class_uid)
        index = self.cache.get(key)
        return self.miss(key, record) if index is None else index

    def miss(self, key: _Key, record: RecordHead) -> int:
        """Match the table (first route wins) and remember the answer for the key."""
        index = next((i for i, route in enumerate(self.routes) if matches(route, record, key)), len(self.routes))
        if len(self.cache) >= CACHE_ENTRIES:
            self.cache.clear()
        self.cache[key] = index
        return index


class RouteTally:
    """One file's routing: each record's route, and the counts per route for the metrics.

    The encoder asks :meth:`decide` first (a dropped record is counted then, and never encoded), and counts a
    sent record in ``sent`` only once it is appended: a record that then fails to encode is a rejection, not a
    routed record."""

    __slots__ = ("_route", "_samples", "dropped", "router", "sent", "topics")

    def __init__(self, router: Router) -> None:
        self.router = router
        self.topics = tuple(topic or "" for topic in router.topics)  # a drop route's entry is never read
        self.sent = [0] * len(router.names)
        self.dropped = [0] * len(router.names)
        self._route, self._samples = router.route, router.samples

    def decide(self, record: RecordHead, account: str, region: str, class_uid: int, event_key: bytes) -> int:
        """The record's route index, or -1 when its route drops it (sample 0) or samples it out (1 in N by
        the event id's CRC32), counted here."""
        index = self._route(record, account, region, class_uid)
        sample = self._samples[index]
        if sample == 1 or (sample and zlib.crc32(event_key) % sample == 0):
            return index
        self.dropped[index] += 1
        return -1

    def counts(self) -> list[tuple[str, int, int]]:
        """(route name, records sent, records dropped) for every route that saw a record."""
        return [
            (name, sent, dropped)
            for name, sent, dropped in zip(self.router.names, self.sent, self.dropped, strict=True)
            if sent or dropped
        ]

"""What kind of event a CloudTrail record is: a versioned category/subtype from a data table.

Why a table and not code: analysts extend and review it (a new eventName is one line in
``classification.toml``), a change is one diff with one version bump, and every event says which version
labelled it. The table is read and validated once at import; a lookup is a dict hit, memoized per
(eventSource, eventName), so classifying costs nothing per record worth measuring.

The same file carries the OCSF class choices (sign-ins and STS credential issuance are Authentication, IAM user
and role changes Account Change, IAM group changes Group Management, and the verb -> Create/Read/Update/Delete
rule for API Activity): they are classification too, and data
for the same reason. This module resolves them to OCSF 1.5.0 activity ids; :mod:`ingester.codec.ocsf` applies
them.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import msgspec

from ingester.codec.cloudtrail import RecordHead, as_bool

INSIGHT_EVENT_TYPE: Final = "AwsCloudTrailInsight"
API_ACTIVITY, AUTHENTICATION, ACCOUNT_CHANGE, GROUP_MANAGEMENT = 6003, 3002, 3001, 3006
# OCSF 1.5.0: class_uid -> (class name, category_uid, category name, {activity caption: activity_id}).
OCSF_CLASSES: Final[dict[int, tuple[str, int, str, dict[str, int]]]] = {
    API_ACTIVITY: (
        "API Activity", 6, "Application Activity",
        {"Create": 1, "Read": 2, "Update": 3, "Delete": 4, "Other": 99},
    ),
    AUTHENTICATION: (
        "Authentication", 3, "Identity & Access Management",
        {
            "Logon": 1, "Logoff": 2, "Authentication Ticket": 3, "Service Ticket Request": 4,
            "Service Ticket Renew": 5, "Preauth": 6, "Other": 99,
        },
    ),
    ACCOUNT_CHANGE: (
        "Account Change", 3, "Identity & Access Management",
        {
            "Create": 1, "Enable": 2, "Password Change": 3, "Password Reset": 4, "Disable": 5, "Delete": 6,
            "Attach Policy": 7, "Detach Policy": 8, "Lock": 9, "MFA Factor Enable": 10,
            "MFA Factor Disable": 11, "Unlock": 12, "Other": 99,
        },
    ),
    GROUP_MANAGEMENT: (
        "Group Management", 3, "Identity & Access Management",
        {
            "Assign Privileges": 1, "Revoke Privileges": 2, "Add User": 3, "Remove User": 4, "Delete": 5,
            "Create": 6, "Other": 99,
        },
    ),
}  # fmt: skip
# (class_uid, activity_id) -> (class_name, category_uid, category_name, activity_name, type_uid, type_name): the
# sibling captions and type_uid (class_uid * 100 + activity_id) OCSF wants beside the ids.
OCSF_KINDS: Final = {
    (class_uid, activity_id): (class_name, category_uid, category, caption, class_uid * 100 + activity_id,
                               f"{class_name}: {caption}")
    for class_uid, (class_name, category_uid, category, activities) in OCSF_CLASSES.items()
    for caption, activity_id in activities.items()
}  # fmt: skip
_CACHE_LIMIT: Final = 65_536  # distinct (eventSource, eventName) pairs memoized; AWS has ~15k APIs


class TableError(ValueError):
    """The classification table is malformed: a bug in the shipped data file, raised at import."""


class Classification(msgspec.Struct, frozen=True, gc=False):
    """Stored with every event (OCSF: ``unmapped.classification``)."""

    version: str
    category: str
    subtype: str


class OcsfChoices(msgspec.Struct, frozen=True):
    """The ``[ocsf]`` section keyed for lookup, its activity captions resolved to OCSF activity_ids."""

    api_verbs: dict[str, int]
    api_overrides: dict[tuple[str, str], int]
    authentication: dict[tuple[str, str], int]
    account_change: dict[tuple[str, str], int]
    group_management: dict[tuple[str, str], int]


@lru_cache(maxsize=16_384)
def _verb(event_name: str) -> str:
    """The leading camel-case word, skipping a ``Batch`` prefix: ``BatchGetImage`` -> ``Get``."""
    name = event_name[5:] if event_name.startswith("Batch") and event_name[5:6].isupper() else event_name
    end = 1
    while end < len(name) and name[end].islower():
        end += 1
    return name[:end]


def _is_word_prefix(name: str, prefix: str) -> bool:
    """``Get`` starts ``GetObject`` but not ``Getaway``: camel-case word boundary."""
    return name.startswith(prefix) and (len(name) == len(prefix) or not name[len(prefix)].islower())


class Table:
    """One loaded classification table: never changed after construction (lookups only memoize)."""

    def __init__(self, data: dict[str, Any]) -> None:
        try:
            self.version: str = str(data["version"])
            taxonomy: dict[str, list[str]] = data["categories"]
            self.categories = {category: frozenset(subtypes) for category, subtypes in taxonomy.items()}
            self._interned: dict[str, Classification] = {}
            self.fallback = self._parse(data["fallback"]["class"])
            self.exact = {
                (source, name): self._parse(value)
                for source, names in data.get("events", {}).items()
                for name, value in names.items()
            }
            scoped: dict[str, list[tuple[str, Classification]]] = {}
            unscoped: list[tuple[str, Classification]] = []
            for rule in data.get("prefix", []):
                target = scoped.setdefault(rule["source"], []) if "source" in rule else unscoped
                target.extend((prefix, self._parse(rule["class"])) for prefix in rule["prefixes"])
            by_length = lambda item: -len(item[0])  # noqa: E731 - longest prefix wins
            self._scoped = {source: sorted(rules, key=by_length) for source, rules in scoped.items()}
            self._unscoped = sorted(unscoped, key=by_length)
            self._sources = {source: self._parse(value) for source, value in data.get("sources", {}).items()}
            self._insights = {kind: self._parse(value) for kind, value in data.get("insight_types", {}).items()}
            self.ocsf = _ocsf_choices(data.get("ocsf", {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise TableError(f"classification table is malformed: {exc!r}") from exc
        self._cache: dict[tuple[str, str], Classification] = {}

    def _parse(self, value: object) -> Classification:
        """``"category/subtype"`` -> one shared Classification per distinct value."""
        if not isinstance(value, str) or value.count("/") != 1:
            raise TableError(f"classification {value!r} is not 'category/subtype'")
        known = self._interned.get(value)
        if known is not None:
            return known
        category, subtype = value.split("/")
        if subtype not in self.categories.get(category, ()):
            raise TableError(f"classification {value!r}: not a subtype listed under [categories]")
        parsed = self._interned[value] = Classification(self.version, category, subtype)
        return parsed

    @property
    def exact_names(self) -> frozenset[str]:
        """Every eventName with an exact entry, for coverage checks."""
        return frozenset(name for _, name in self.exact)

    def classify(self, event_source: str, event_name: str) -> Classification:
        key = (event_source, event_name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(event_source, event_name)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # bounded memory on adversarial input; refills from the hot set
            self._cache[key] = hit
        return hit

    def _resolve(self, event_source: str, event_name: str) -> Classification:
        exact = self.exact.get((event_source, event_name))
        if exact is not None:
            return exact
        for rules in (self._scoped.get(event_source, ()), self._unscoped):
            for prefix, classification in rules:
                if _is_word_prefix(event_name, prefix):
                    return classification
        return self._sources.get(event_source, self.fallback)

    def classify_insight(self, insight_type: str) -> Classification:
        return self._insights.get(insight_type) or self._insights.get("") or self.fallback

    @lru_cache(maxsize=16_384)  # noqa: B019 - tables live as long as the process; bounded
    def api_activity(self, event_source: str, event_name: str, read_only: bool | None) -> int:
        """API Activity's activity_id: an override, else the name's verb, else Read if readOnly, else Other."""
        override = self.ocsf.api_overrides.get((event_source, event_name))
        if override is not None:
            return override
        by_verb = self.ocsf.api_verbs.get(_verb(event_name))
        if by_verb is not None:
            return by_verb
        return 2 if read_only else 99

    def ocsf_kind(self, record: RecordHead) -> tuple[int, int]:
        """(class_uid, activity_id): sign-ins and credential issuance are Authentication, IAM user and role
        changes Account Change, IAM group changes Group Management, the rest (Insights records too, as Other) API
        Activity."""
        if record.insight_details is not None:
            return API_ACTIVITY, 99
        key = (record.event_source, record.event_name)
        if (activity := self.ocsf.authentication.get(key)) is not None:
            return AUTHENTICATION, activity
        if (activity := self.ocsf.account_change.get(key)) is not None:
            return ACCOUNT_CHANGE, activity
        if (activity := self.ocsf.group_management.get(key)) is not None:
            return GROUP_MANAGEMENT, activity
        return API_ACTIVITY, self.api_activity(record.event_source, record.event_name, as_bool(record.read_only))

    def classify_record(self, record: RecordHead) -> Classification:
        """Insights records by their insight type, every other record by eventSource + eventName."""
        if record.insight_details is not None or record.event_type == INSIGHT_EVENT_TYPE:
            details = record.insight_details
            return self.classify_insight(details.insight_type if details is not None else "")
        return self.classify(record.event_source, record.event_name)


def _activity(class_uid: int, caption: str) -> int:
    activity = OCSF_CLASSES[class_uid][3].get(caption)
    if activity is None:
        raise TableError(f"[ocsf]: {OCSF_CLASSES[class_uid][0]} has no activity {caption!r}")
    return activity


def _pairs(class_uid: int, section: dict[str, dict[str, str]]) -> dict[tuple[str, str], int]:
    return {
        (source, name): _activity(class_uid, caption)
        for source, names in section.items()
        for name, caption in names.items()
    }


def _ocsf_choices(section: dict[str, Any]) -> OcsfChoices:
    overrides: dict[tuple[str, str], int] = {}
    for key, caption in section.get("api_overrides", {}).items():
        source, sep, name = key.partition(":")
        if not sep:
            raise TableError(f"[ocsf.api_overrides] key {key!r} is not 'eventSource:eventName'")
        overrides[source, name] = _activity(API_ACTIVITY, caption)
    classes = {
        class_uid: _pairs(class_uid, section.get(name, {}))
        for class_uid, name in (
            (AUTHENTICATION, "authentication"), (ACCOUNT_CHANGE, "account_change"),
            (GROUP_MANAGEMENT, "group_management"),
        )
    }  # fmt: skip
    claimed: dict[tuple[str, str], int] = {}
    for class_uid, pairs in classes.items():
        for key in pairs.keys() & (claimed.keys() | overrides.keys()):
            raise TableError(f"[ocsf]: {key[0]}:{key[1]} is listed for two classes (one is never used)")
        claimed.update(dict.fromkeys(pairs, class_uid))
    return OcsfChoices(
        api_verbs={verb: _activity(API_ACTIVITY, caption) for verb, caption in section.get("api_verbs", {}).items()},
        api_overrides=overrides,
        authentication=classes[AUTHENTICATION],
        account_change=classes[ACCOUNT_CHANGE],
        group_management=classes[GROUP_MANAGEMENT],
    )


def load_table(text: bytes | str) -> Table:
    """Parse and validate a table (the shipped one, or a candidate in tests)."""
    try:
        data = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TableError(f"classification table is not valid TOML: {exc}") from exc
    return Table(data)


TABLE: Final = load_table(resources.files("ingester.codec").joinpath("classification.toml").read_bytes())
VERSION: Final = TABLE.version
classify = TABLE.classify
classify_record = TABLE.classify_record
ocsf_kind = TABLE.ocsf_kind

"""The generator's data files, ``data/vocabulary.toml`` and ``data/events.toml``: their schema, loaded once.

Why data files: the generator is mostly tables (user agents, identity mixes, error messages, ~90 event templates
and their weights), and changing the event mix should be a data diff that reads as one, not a code review.
Why validated here, at import: a typo in a table would otherwise surface as a wrong record deep in a benchmark
or an integration test; instead it fails as :class:`DataFileError`, naming the file and the entry. The files
are decoded by msgspec into the Structs below (unknown keys rejected), then the references are resolved:
``"@group"`` in a user-agent list, ``"@fragment"`` in an event template, an event's ``build`` and ``who``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from importlib import resources
from typing import Annotated, Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

# The userIdentity types generate.py builds; [identity_weights] may name only these.
IDENTITY_KINDS = frozenset(
    {"AssumedRole", "IAMUser", "FederatedUser", "AWSService", "Internal", "Root", "AWSAccount",
     "IdentityCenterUser", "Unknown", "WebIdentityUser", "SAMLUser"}
)  # fmt: skip
# The user-agent groups the generator reads by name, besides by_style.
REQUIRED_GROUPS = frozenset({"browser", "console", "sdk", "go_v2"})
_REF = "@"


class DataFileError(ValueError):
    """A generator data file is malformed; the message names the file and the entry."""


class Role(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    style: str  # picks the session name and user agent; "svc": a service-linked role, invoked by its service
    path: str = "/"
    session: str = ""  # a fixed session name, instead of one drawn per record


class Cast(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sso_permission_sets: tuple[str, ...]
    app_count: int
    environments: tuple[str, ...]
    app_role_styles: tuple[str, ...]
    users: tuple[str, ...]
    public_first_octets: tuple[int, ...]
    roles: tuple[Role, ...]


class UserAgents(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Named groups, and lists by session style; ``"@group"`` entries are spliced in when decoded."""

    groups: dict[str, tuple[str, ...]]
    by_style: dict[str, tuple[str, ...]]

    def __post_init__(self) -> None:  # a ValueError here becomes a ValidationError naming the table
        resolved: dict[str, tuple[str, ...]] = {}
        for name, agents in self.groups.items():  # in file order: a group may use the groups above it
            resolved[name] = _splice(agents, resolved, f"groups.{name}")
        self.groups = resolved
        self.by_style = {
            style: _splice(agents, resolved, f"by_style.{style}") for style, agents in self.by_style.items()
        }
        if missing := REQUIRED_GROUPS - resolved.keys():
            raise ValueError(f"groups {sorted(missing)} are required (the generator reads them by name)")


def _splice(agents: tuple[str, ...], groups: Mapping[str, tuple[str, ...]], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for agent in agents:
        if not agent.startswith(_REF):
            out.append(agent)
        elif (group := groups.get(agent[len(_REF) :])) is not None:
            out.extend(group)
        else:
            raise ValueError(f"{where}: {agent!r} is not a group defined above it")
    return tuple(out)


class BySource(msgspec.Struct, Generic[T], frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Choices per eventSource prefix, and the default for the other sources."""

    default: tuple[T, ...]
    by_source: dict[str, tuple[T, ...]]

    def get(self, source: str) -> tuple[T, ...]:
        return self.by_source.get(source, self.default)


class Vocabulary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    apps: tuple[str, ...]
    people: tuple[str, ...]
    event_versions: dict[str, float]  # eventVersion -> weight
    tls: tuple[tuple[str, str], ...]
    vpc_endpoint_sources: frozenset[str]
    policy_actions: tuple[list[str], ...]
    hosts: dict[str, str]
    user_agents: UserAgents
    identity_weights: dict[str, dict[str, float]]  # profile -> userIdentity.type -> weight
    invoked_by: BySource[str]
    errors: BySource[tuple[str, str]]  # (errorCode, errorMessage)
    cast: Cast

    def __post_init__(self) -> None:
        for profile, weights in self.identity_weights.items():
            if unknown := weights.keys() - IDENTITY_KINDS:
                raise ValueError(f"identity_weights.{profile}: unknown userIdentity types {sorted(unknown)}")


class EventEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[event]]``; events.toml's header documents the keys."""

    source: str
    name: str
    weight: Annotated[float, msgspec.Meta(gt=0)]
    write: bool = False
    data: bool = False
    who: str = ""
    failed_sign_in: bool = False
    build: str = ""
    request: Any = None
    response: Any = None
    resources: Any = None
    extra: Any = None


class _EventsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    event: tuple[EventEntry, ...]
    fragments: dict[str, Any] = {}


def _package_file(name: str) -> tuple[bytes, str]:
    file = resources.files("ingester.demo").joinpath("data", name)
    return file.read_bytes(), str(file)


def _decode(raw: bytes | str, kind: type[T], path: str) -> T:
    try:
        return msgspec.toml.decode(raw, type=kind)
    except msgspec.DecodeError as exc:  # invalid TOML, or a ValidationError naming the key's path
        raise DataFileError(f"{path}: {exc}") from exc


def decode_vocabulary(raw: bytes | str, path: str = "vocabulary.toml") -> Vocabulary:
    """Parse and validate a vocabulary (the shipped one, or a candidate in tests); ``path`` is for messages."""
    return _decode(raw, Vocabulary, path)


def decode_events(
    raw: bytes | str, vocabulary: Vocabulary, builders: Collection[str], path: str = "events.toml"
) -> tuple[EventEntry, ...]:
    """The events with their fragments resolved; ``builders`` are the names an event's ``build`` may use."""
    file = _decode(raw, _EventsFile, path)
    fragments = {
        name: _resolve(value, file.fragments, f"{path}: [fragments] {name}", (name,))
        for name, value in file.fragments.items()
    }
    events = []
    for index, entry in enumerate(file.event, 1):
        where = f"{path}: event #{index} ({entry.source}:{entry.name})"
        if entry.who and entry.who not in vocabulary.identity_weights:
            raise DataFileError(f"{where}: who={entry.who!r} is not in vocabulary.toml's [identity_weights]")
        templates = (entry.request, entry.response, entry.resources, entry.extra)
        if entry.build and entry.build not in builders:
            raise DataFileError(f"{where}: unknown builder {entry.build!r} (known: {', '.join(sorted(builders))})")
        if entry.build and any(t is not None for t in templates):
            raise DataFileError(f"{where}: an event has a builder or templates, not both")
        request, response, res, extra = (_resolve(t, fragments, where, ()) for t in templates)
        events.append(msgspec.structs.replace(entry, request=request, response=response, resources=res, extra=extra))
    return tuple(events)


def load_vocabulary() -> Vocabulary:
    return decode_vocabulary(*_package_file("vocabulary.toml"))


def load_events(vocabulary: Vocabulary, builders: Collection[str]) -> tuple[EventEntry, ...]:
    raw, path = _package_file("events.toml")
    return decode_events(raw, vocabulary, builders, path)


def _resolve(template: object, fragments: Mapping[str, object], where: str, seen: tuple[str, ...]) -> object:
    """``template`` with every ``"@fragment"`` string replaced by that fragment, itself resolved."""
    if isinstance(template, str) and template.startswith(_REF):
        name = template[len(_REF) :]
        if name not in fragments or name in seen:
            problem = "refers to itself" if name in seen else "is not in [fragments]"
            raise DataFileError(f"{where}: {template!r} {problem}")
        return _resolve(fragments[name], fragments, where, (*seen, name))
    if isinstance(template, dict):
        return {key: _resolve(value, fragments, where, seen) for key, value in template.items()}
    if isinstance(template, list):
        return [_resolve(value, fragments, where, seen) for value in template]
    return template

"""Our OCSF against Amazon Security Lake's conversions of the same CloudTrail records (issue 14, "Tests").

Two anchors:

- Security Lake's sample inputs (aws-samples/amazon-security-lake-ocsf-validation, MIT-0), committed in
  ``data/security_lake_inputs.ndjson`` (``data/README.md``): Security Lake files each under the class it maps it
  to, so the folder is the anchor for the class.
- Whole pairs (CloudTrail record, Security Lake's OCSF event): its Parquet outputs with their input files, and
  AWS's OCSF 1.5.0 CloudTrail samples (ocsf/examples), fetched by ``scripts/fetch-ocsf-samples.sh`` into
  ``~/.cache/ingester/ocsf-samples/pairs`` (``INGESTER_OCSF_SAMPLES`` names another folder). Without them those
  tests skip, naming the script. Each field family (class, activity, status, actor, user, session, src/dst
  endpoint, api, cloud, metadata) must equal the anchor's or differ in a way docs/ocsf.md's table "Where we differ from
  Amazon Security Lake" lists: :data:`ACCEPTED` names the table's row for each.

Run as a script (``python -m tests.unit.test_security_lake_pairs [PAIRS_DIR]``) it prints the agreement counts
per family, the figure issue 14 asks for before and after a mapping change.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ingester.codec.decode import decode_records
from ingester.codec.ocsf import to_ocsf

HERE = Path(__file__).parent
INPUTS = HERE / "data" / "security_lake_inputs.ndjson"
# The table "Where we differ from Security Lake" lives in the OCSF mapping page.
README = HERE.parents[1] / "docs" / "ocsf.md"
FOLDER_CLASS = {"account_change": 3001, "api_activity": 6003, "authentication": 3002}
# OCSF 1.0.0-rc.2 (Security Lake's first outputs) numbered API Activity 3005; 1.x moved it to 6003.
_RC2_CLASSES = {3005: 6003}


def pairs_dir() -> Path:
    explicit = os.environ.get("INGESTER_OCSF_SAMPLES")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("INGESTER_CACHE_DIR") or Path.home() / ".cache" / "ingester")
    return cache / "ocsf-samples" / "pairs"


def _ours(record: dict[str, Any]) -> dict[str, Any]:
    decoded = decode_records([msgspec.Raw(json.dumps(record).encode())])
    [(raw, typed)] = decoded.records
    event = to_ocsf(typed, raw, account_id="000000000000", region="us-east-1")
    value: dict[str, Any] = json.loads(msgspec.json.encode(event))
    return value


def _get(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if value not in ("", None, {}, []) else None


def _fields(*paths: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return lambda event: tuple(_get(event, path) for path in paths)


def _status(event: dict[str, Any]) -> Any:
    return _get(event, "status_id") or {"Success": 1, "Failure": 2}.get(_get(event, "status") or "")


FAMILIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "class": lambda event: _RC2_CLASSES.get(event.get("class_uid"), event.get("class_uid")),  # type: ignore[arg-type]
    "activity": _fields("activity_id"),
    "status": _status,
    "actor": _fields("actor.user.type", "actor.user.name", "actor.user.uid", "actor.user.account.uid"),
    "user": _fields("user.name", "user.uid"),
    "session": _fields("actor.session.issuer", "session.uid", "session.issuer"),
    "src_endpoint": _fields("src_endpoint.ip", "src_endpoint.domain"),
    "dst_endpoint": _fields("dst_endpoint.svc_name"),
    "api": _fields("api.operation", "api.service.name"),
    "cloud": _fields("cloud.provider", "cloud.region", "cloud.account.uid"),
    "metadata": _fields("metadata.uid", "metadata.product.name", "metadata.product.vendor_name"),
}
# (eventName, family) -> the first cell of README's row that says why we differ there.
ACCEPTED: dict[tuple[str, str], str] = {
    ("CredentialChallenge", "activity"): "Identity Center sign-in steps",
    ("CredentialChallenge", "status"): "Identity Center sign-ins",
    ("CredentialChallenge", "user"): "Authentication `user`",
    ("DescribeTargetHealth", "actor"): "AssumedRole `actor.user.name`",
}


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def load_pairs(folder: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, CloudTrail record, anchor event), paired by eventID = metadata.uid, else by position."""
    found = []
    for inputs in sorted(folder.glob("*.input.ndjson")):
        name = inputs.name.removesuffix(".input.ndjson")
        records = list(_lines(inputs))
        anchors = list(_lines(inputs.with_name(f"{name}.output.ndjson")))
        by_uid = {_get(anchor, "metadata.uid"): anchor for anchor in anchors}
        for position, record in enumerate(records):
            anchor = by_uid.get(record.get("eventID")) or (anchors[position] if position < len(anchors) else None)
            if anchor is not None:
                found.append((f"{name}#{position}", record, anchor))
    return found


def compare(record: dict[str, Any], anchor: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The families where ours and the anchor differ: family -> (ours, anchor)."""
    ours = _ours(record)
    return {
        family: (mine, theirs)
        for family, extract in FAMILIES.items()
        if (mine := extract(ours)) != (theirs := extract(anchor))
    }


def _pairs_or_skip() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    folder = pairs_dir()
    pairs = load_pairs(folder) if folder.is_dir() else []
    if not pairs:
        pytest.skip(f"no Security Lake pairs in {folder}: run scripts/fetch-ocsf-samples.sh (needs GitHub)")
    return pairs


def test_every_security_lake_sample_input_is_in_security_lakes_class_and_valid() -> None:
    entries = list(_lines(INPUTS))
    assert len(entries) >= 12
    for entry in entries:
        event = _ours(entry["record"])
        assert event["class_uid"] == FOLDER_CLASS[entry["folder"]], (entry["path"], event["class_name"])


def test_every_pair_agrees_with_security_lake_or_differs_as_the_readme_says() -> None:
    readme = README.read_text(encoding="utf-8")
    unexplained = {}
    for name, record, anchor in _pairs_or_skip():
        for family, values in compare(record, anchor).items():
            row = ACCEPTED.get((record.get("eventName", ""), family))
            if row is None or f"| {row} |" not in readme:
                unexplained[name, family] = values
    assert unexplained == {}


def test_every_accepted_difference_is_a_row_of_the_readme_table() -> None:
    readme = README.read_text(encoding="utf-8")
    assert [row for row in ACCEPTED.values() if f"| {row} |" not in readme] == []


def agreement(pairs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> dict[str, int]:
    """How many pairs agree, per family."""
    counts = dict.fromkeys(FAMILIES, 0)
    for _, record, anchor in pairs:
        differing = compare(record, anchor)
        for family in FAMILIES:
            counts[family] += family not in differing
    return counts


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else pairs_dir()
    found = load_pairs(folder)
    print(f"{len(found)} pairs from {folder}")
    for family, agreeing in agreement(found).items():
        print(f"  {family:13} {agreeing}/{len(found)}")
    for name, record, anchor in found:
        for family, (mine, theirs) in compare(record, anchor).items():
            print(f"  {name} {family}: ours {mine} / anchor {theirs}")

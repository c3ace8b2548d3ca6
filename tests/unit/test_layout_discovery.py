"""Bucket-only discovery's pure part: the common prefixes of a bucket's layout -> shards (discovery/layout.py)."""

from __future__ import annotations

from ingester.discovery.layout import Location, account_folders, shards_from_layout

ORG = "o-abc123def4"
A, B = "111111111111", "222222222222"


def test_organization_and_account_folders_are_told_apart_and_the_rest_ignored() -> None:
    root = "AWSLogs/"
    listed = [f"AWSLogs/{ORG}/", f"AWSLogs/{B}/", "AWSLogs/readme/", f"AWSLogs/{A}/", "AWSLogs/12345/"]

    assert account_folders(root, listed) == ([f"AWSLogs/{ORG}/"], [f"AWSLogs/{A}/", f"AWSLogs/{B}/"])


def test_organization_trail_layout_gives_one_shard_per_account_and_region() -> None:
    location = Location("archive", "")
    prefixes = [
        f"AWSLogs/{ORG}/{A}/CloudTrail/us-east-1/",
        f"AWSLogs/{ORG}/{A}/CloudTrail/eu-west-1/",
        f"AWSLogs/{ORG}/{B}/CloudTrail/us-east-1/",
    ]

    shards = shards_from_layout(location, prefixes, reader_account="999999999999")

    assert sorted(shards) == [f"s3://archive/{p}" for p in sorted(prefixes)]
    shard = shards[f"s3://archive/AWSLogs/{ORG}/{B}/CloudTrail/us-east-1/"]
    assert (shard.org_id, shard.account_id, shard.region, shard.key_prefix) == (ORG, B, "us-east-1", "")
    assert shard.reader_account == "999999999999" and shard.trail_arn == "" and not shard.log_validation


def test_plain_layout_under_a_key_prefix_keeps_the_prefix_and_no_organization() -> None:
    location = Location("logs", "security/trails")
    prefixes = [f"security/trails/AWSLogs/{A}/CloudTrail/ap-southeast-2/", f"AWSLogs/{B}/CloudTrail/us-east-1/"]

    shards = shards_from_layout(location, prefixes, reader_account=A)

    (shard,) = shards.values()  # the key outside the configured prefix is not this location's
    assert shard.log_prefix == prefixes[0] and shard.org_id == "" and shard.key_prefix == "security/trails"


def test_a_digest_sibling_means_log_file_validation() -> None:
    location = Location("archive", ORG)  # Control Tower: the prefix is the organization id
    root = f"{ORG}/AWSLogs/{ORG}"
    prefixes = [
        f"{root}/{A}/CloudTrail/us-east-1/",
        f"{root}/{A}/CloudTrail-Digest/us-east-1/",
        f"{root}/{A}/CloudTrail/eu-west-1/",
        f"{root}/{B}/CloudTrail-Digest/us-east-1/",  # digests but no log file yet: nothing to collect
    ]

    shards = shards_from_layout(location, prefixes, reader_account=A)

    assert {(s.account_id, s.region): s.log_validation for s in shards.values()} == {
        (A, "us-east-1"): True,
        (A, "eu-west-1"): False,
    }


def test_regions_and_excluded_accounts_filter_as_in_organization_mode() -> None:
    location = Location("archive", "")
    prefixes = [f"AWSLogs/{acct}/CloudTrail/{region}/" for acct in (A, B) for region in ("us-east-1", "eu-west-1")]

    shards = shards_from_layout(location, prefixes, reader_account=A, regions=("eu-west-1",), exclude_accounts=(B,))

    assert [(s.account_id, s.region) for s in shards.values()] == [(A, "eu-west-1")]


def test_folders_that_are_not_a_cloudtrail_layout_yield_nothing() -> None:
    location = Location("archive", "")
    prefixes = [
        f"AWSLogs/{A}/CloudTrail-Insight/us-east-1/",
        f"AWSLogs/{A}/Config/us-east-1/",
        f"AWSLogs/{A}/CloudTrail/not_a_region/",
        f"AWSLogs/{A}/CloudTrail/us-east-1/2024/",
        f"AWSLogs/o-x/{A}/CloudTrail/us-east-1/",
    ]

    assert shards_from_layout(location, prefixes, reader_account=A) == {}


def test_shard_ids_match_the_organization_modes_so_checkpoints_carry_over() -> None:
    from ingester.discovery.trails import Trail, shards_for

    trail = Trail(
        arn=f"arn:aws:cloudtrail:us-east-1:{A}:trail/org",
        name="org",
        home_region="us-east-1",
        bucket="archive",
        key_prefix="p",
        multi_region=True,
        organization=True,
    )
    by_trail = shards_for([trail], accounts=[A, B], org_id=ORG, regions=["us-east-1"])
    by_layout = shards_from_layout(
        Location("archive", "p"), [shard.log_prefix for shard in by_trail.values()], reader_account=A
    )

    assert sorted(by_layout) == sorted(by_trail)

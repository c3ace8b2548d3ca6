"""Landing-zone settings (issue 15): [[buckets]] reader roles, the bucket discovery mode, and the accounts of a
delegated administrator's organization collected from organization trails only. Validated once, at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingester.config import build, load, log_location
from ingester.discovery.accounts import Organization
from ingester.discovery.discover import AccountFailure, Discovery, trails_to_describe
from ingester.errors import ConfigError
from ingester.models import Shard
from ingester.pipeline.supervisor import keep_failed

ROLE = "arn:aws:iam::222222222222:role/ingester-log-archive-read"


def test_buckets_table_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "ingester.toml"
    path.write_text(
        f"""
        [[buckets]]
        name = "aws-controltower-logs-222222222222-us-east-1"
        role_arn = "{ROLE}"
        external_id = "ingester"
        region = "us-east-1"

        [[buckets]]
        name = "*"
        role_arn = "arn:aws-us-gov:iam::333333333333:role/path/reader"
        """,
        encoding="utf-8",
    )

    settings = load(path, environ={})

    exact, wildcard = settings.buckets
    assert (exact.role_arn, exact.external_id, exact.region) == (ROLE, "ingester", "us-east-1")
    assert settings.bucket_reader("aws-controltower-logs-222222222222-us-east-1") is exact
    assert settings.bucket_reader("another-bucket") is wildcard


def test_an_exact_name_beats_the_wildcard_whatever_the_order() -> None:
    settings = build(
        {"buckets": [{"name": "*", "role_arn": ROLE}, {"name": "archive", "role_arn": ROLE.replace("read", "own")}]}
    )

    assert settings.bucket_reader("archive") is settings.buckets[1]
    assert settings.bucket_reader("other") is settings.buckets[0]
    assert build({"buckets": [{"name": "archive", "role_arn": ROLE}]}).bucket_reader("other") is None
    assert build({}).bucket_reader("archive") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "archive", "role_arn": "arn:aws:iam::2222:role/x"}, r"buckets\[1\] \(name = 'archive'\): role_arn"),
        ({"name": "archive", "role_arn": "ingester-log-archive-read"}, r"buckets\[1\].*not an IAM role ARN"),
        ({"name": "archive", "role_arn": "arn:aws:iam::222222222222:user/x"}, r"buckets\[1\].*not an IAM role ARN"),
        ({"name": "Archive_Bucket", "role_arn": ROLE}, r"buckets\[1\].*S3 bucket name"),
        ({"name": "first", "role_arn": ROLE}, r"buckets\[1\] \(name = 'first'\): a second entry"),
    ],
)
def test_a_bad_entry_fails_at_load_naming_the_entry(entry: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build({"buckets": [{"name": "first", "role_arn": ROLE}, entry]})


def test_an_entry_without_a_role_or_with_an_unknown_key_fails() -> None:
    with pytest.raises(ConfigError, match="role_arn"):
        build({"buckets": [{"name": "archive"}]})
    with pytest.raises(ConfigError, match="role"):
        build({"buckets": [{"name": "archive", "role": ROLE}]})


def test_bucket_mode_needs_its_locations_and_they_need_the_bucket_mode() -> None:
    settings = build({"discovery": {"mode": "bucket", "log_buckets": ["archive", "s3://logs/o-abc123def4/"]}})
    assert [log_location(entry) for entry in settings.discovery.log_buckets] == [
        ("archive", ""),
        ("logs", "o-abc123def4"),
    ]
    with pytest.raises(ConfigError, match=r"needs discovery\.log_buckets"):
        build({"discovery": {"mode": "bucket"}})
    with pytest.raises(ConfigError, match=r"only with discovery\.mode"):
        build({"discovery": {"mode": "organization", "log_buckets": ["archive"]}})
    with pytest.raises(ConfigError, match="'/prefix'"):
        build({"discovery": {"mode": "bucket", "log_buckets": ["/prefix"]}})


def test_bucket_mode_locations_from_the_environment() -> None:
    settings = load(
        None, environ={"INGESTER_DISCOVERY__MODE": "bucket", "INGESTER_DISCOVERY__LOG_BUCKETS": "aa1,bb2/p"}
    )
    assert settings.discovery.log_buckets == ("aa1", "bb2/p")


def test_organization_trail_only_accounts_are_not_described_but_stay_collected() -> None:
    settings = build({"discovery": {"mode": "organization", "organization_trail_only_accounts": ["111111111111"]}})
    org = Organization("o-abc123def4", ("111111111111", "222222222222", "333333333333"))

    assert trails_to_describe(org, settings) == ("222222222222", "333333333333")
    assert trails_to_describe(org, build({"discovery": {"mode": "organization"}})) == org.accounts
    with pytest.raises(ConfigError, match="12-digit"):
        build({"discovery": {"mode": "organization", "organization_trail_only_accounts": ["management"]}})
    with pytest.raises(ConfigError, match=r"only with discovery\.mode"):
        build({"discovery": {"organization_trail_only_accounts": ["111111111111"]}})


def _shard(bucket: str, account: str) -> Shard:
    return Shard(
        trail_arn="",
        bucket=bucket,
        key_prefix="",
        org_id="",
        account_id=account,
        region="us-east-1",
        reader_account="999999999999",
    )


def test_a_location_that_failed_to_list_keeps_its_shards_and_a_listed_one_loses_gone_prefixes() -> None:
    running = {s.shard_id: s for s in (_shard("a1", "111111111111"), _shard("b2", "111111111111"))}
    found = Discovery(Organization("", ()), (), {}, failures=(AccountFailure("s3://b2/AWSLogs/", "AccessDenied"),))

    assert sorted(keep_failed(running, found)) == ["s3://b2/AWSLogs/111111111111/CloudTrail/us-east-1/"]

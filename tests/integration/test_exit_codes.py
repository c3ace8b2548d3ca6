"""The exit-code table (docs/exit-codes.md), as a user meets it: subprocesses of ``python -m ingester`` against
moto's server (and an unreachable broker); no false success, and one code per failure however many workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingester.demo.world import build_organization, client
from ingester.errors import ExitCode
from tests.integration.test_cli import ingester

pytestmark = pytest.mark.integration


def file_sink_config(path: Path, endpoint: str, *, regions: str = '["us-east-1"]', discovery: str = "") -> Path:
    """Settings that need moto only: the file sink, so no broker is involved."""
    config = path / "ingester.toml"
    config.write_text(
        f"""
[aws]
endpoint_url = "{endpoint}"
[discovery]
mode = "organization"
regions = {regions}
{discovery}
[collection]
start_time = "2020-01-01"
[sink]
type = "file"
[sink.file]
path = "{path / "events.ndjson"}"
[checkpoint]
path = "{path / "checkpoints.sqlite"}"
[telemetry]
log_level = "warning"
"""
    )
    return config


def test_a_configuration_error_exits_2_from_every_command(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('[kafka]\ntopc = "x"\n')
    for command in (["run", "--once"], ["backfill", "--since", "2024-01-01"], ["discover"], ["check-config"]):
        result = ingester(*command, "--config", str(typo))
        assert result.returncode == ExitCode.CONFIG, (command, result.stdout, result.stderr)
        assert "topc" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_kafka_unreachable_exits_5_with_one_worker_or_several(workers: str, tmp_path: Path) -> None:
    """Before: 1 with one worker, 143 with two (the parent SIGTERMed a child that was exiting with 1)."""
    config = tmp_path / "unreachable.toml"
    config.write_text(
        '[aws]\nendpoint_url = "http://127.0.0.1:9"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:9"\nconnect_timeout_seconds = 2\n'
        f'[checkpoint]\npath = "{tmp_path / "checkpoints.sqlite"}"\n'
        '[telemetry]\nlog_level = "error"\n'
    )
    result = ingester("run", "--once", "--workers", workers, "--config", str(config))
    assert result.returncode == ExitCode.SINK, result.stderr[-3000:]
    assert "SinkError: cannot connect to Kafka at 127.0.0.1:9" in result.stderr
    if workers == "2":
        assert "exited with 5 (SINK); stopping the others" in result.stderr


async def test_nothing_to_collect_is_never_a_silent_success(aws_endpoint: str, tmp_path: Path) -> None:
    """An organization without a trail: run --once (one worker or two), check-config and discover all exit 3."""
    await asyncio.to_thread(lambda: client(aws_endpoint, "organizations").create_organization(FeatureSet="ALL"))
    config = str(file_sink_config(tmp_path, aws_endpoint))
    for workers in ("1", "2"):
        ran = await asyncio.to_thread(ingester, "run", "--once", "--workers", workers, "--config", config)
        assert ran.returncode == ExitCode.NOTHING_TO_COLLECT, (workers, ran.stderr[-3000:])
        assert "nothing_to_collect" in ran.stderr
    checked = await asyncio.to_thread(ingester, "check-config", "--config", config)
    assert checked.returncode == ExitCode.NOTHING_TO_COLLECT, checked.stdout + checked.stderr
    assert "FAIL trails: no trails found" in checked.stdout
    found = await asyncio.to_thread(ingester, "discover", "--config", config)
    assert found.returncode == ExitCode.NOTHING_TO_COLLECT, found.stdout + found.stderr
    assert "shards (0):" in found.stdout and "no trails found" in found.stderr


async def test_discover_names_each_failed_account_and_why(aws_endpoint: str, tmp_path: Path) -> None:
    """Before: ``failed: <account>`` and exit 0. The region comes from the environment, as in the report."""
    world = await asyncio.to_thread(build_organization, aws_endpoint, members=1)
    config = file_sink_config(tmp_path, aws_endpoint, discovery="control_plane_max_attempts = 1")
    env = {"INGESTER_DISCOVERY__REGIONS": "mars-1"}  # comma-separated, as config.env_overrides reads it
    found = await asyncio.to_thread(ingester, "discover", "--config", str(config), env=env)
    assert found.returncode == ExitCode.AWS, found.stdout + found.stderr
    for account in world.accounts:
        line = next(line for line in found.stdout.splitlines() if line.startswith(f"  failed: {account}: "))
        assert "not a region botocore knows: mars-1" in line and "cloudtrail:DescribeTrails" in line, line
    assert f"discovery failed in {len(world.accounts)} of {len(world.accounts)} accounts" in found.stderr


async def test_a_trail_whose_bucket_is_missing_fails_check_config_and_run_once(
    aws_endpoint: str, tmp_path: Path
) -> None:
    """check-config lists the bucket with the reader account's credentials; run --once gives up on its shards
    (collection.max_attempts = 1) and says so: INCOMPLETE, not a green run that collected nothing."""
    world = await asyncio.to_thread(build_organization, aws_endpoint, members=1)
    await asyncio.to_thread(lambda: client(aws_endpoint, "s3").delete_bucket(Bucket=world.bucket))
    config = (
        file_sink_config(tmp_path, aws_endpoint).read_text().replace("[collection]", "[collection]\nmax_attempts = 1")
    )
    (tmp_path / "ingester.toml").write_text(config)
    checked = await asyncio.to_thread(ingester, "check-config", "--config", str(tmp_path / "ingester.toml"))
    assert checked.returncode == ExitCode.AWS, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert "ok   trails: 1 trail(s), 2 shard(s)" in lines, lines
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith(f"FAIL bucket {world.bucket}: NoSuchBucket: "), lines
    assert f"as account {world.management_account}, trail {world.trail_arn}" in failed[0]
    assert lines[-1].startswith("ok   file sink:"), lines

    ran = await asyncio.to_thread(
        ingester, "run", "--once", "--workers", "1", "--config", str(tmp_path / "ingester.toml")
    )
    assert ran.returncode == ExitCode.INCOMPLETE, ran.stderr[-3000:]
    assert "run_incomplete" in ran.stderr and "NoSuchBucket" in ran.stderr


def test_demo_refuses_a_folder_it_did_not_create_and_an_unknown_region(tmp_path: Path) -> None:
    """Before: ``--output`` was deleted whole (``--output .`` wiped the current directory), and mars-1 printed
    54 tracebacks, said "NOT all generated records present" and exited 0."""
    (tmp_path / "notes.txt").write_text("keep me")
    refused = ingester("demo", "--regions", "us-east-1", "--output", str(tmp_path))
    assert refused.returncode == ExitCode.CONFIG, refused.stderr
    assert "not created by `ingester demo`" in refused.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"

    mars = ingester("demo", "--regions", "mars-1", "--output", str(tmp_path / "demo"), timeout=60)
    assert mars.returncode == ExitCode.CONFIG, mars.stderr
    assert mars.stderr.splitlines() == [
        "ingester: configuration error: --regions: mars-1 is not an AWS region "
        "(botocore knows e.g. us-east-1, eu-west-1)"
    ]
    assert not (tmp_path / "demo").exists()

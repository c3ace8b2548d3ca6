"""The command line, as a user runs it: check-config, discover, backfill, demo (subprocesses, real broker and moto)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_crash import write_config
from tests.integration.test_pipeline import REGIONS, START, event_ids, topics
from tests.integration.test_s3_faults import small_world

pytestmark = pytest.mark.integration


def ingester(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m ingester <args>``; ``env`` adds to the environment (INGESTER_* overrides)."""
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ingester", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )


async def test_check_config_discover_and_backfill(aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    config = write_config(tmp_path, aws_endpoint, kafka_bootstrap, topic)

    checked = await asyncio.to_thread(ingester, "check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   config",
        "ok   aws credentials",
        "ok   organizations",
        "ok   cloudtrail",
        "ok   discovery",
        "ok   trails",
        f"ok   bucket {world.bucket}",  # one ListObjectsV2 for the one (bucket, reader account)
        "ok   kafka",
    ]
    assert world.org_id in checked.stdout

    found = await asyncio.to_thread(ingester, "discover", "--config", str(config))
    assert found.returncode == 0, found.stderr
    assert f"shards ({len(world.accounts) * len(REGIONS)}):" in found.stdout
    assert "org-trail (organization, multi-region, no digests)" in found.stdout

    # --since the data's first day: from 2020 the listing walks ~2,500 empty day folders per shard (5,082 S3
    # requests, 212 s on a loaded 2-core machine, past this call's timeout) for the same 24 files.
    since = START.date().isoformat()
    backfill = await asyncio.to_thread(ingester, "backfill", "--since", since, "--config", str(config))
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    stats = json.loads(backfill.stdout.splitlines()[-1])
    assert (stats["objects_delivered"], stats["records"]) == (world.files, world.records)
    assert f"{world.files}/{world.files}" in backfill.stderr  # the progress bar reached its end
    assert sorted(await event_ids(kafka_bootstrap, topic)) == sorted(world.event_ids)


def test_check_config_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('[kafka]\ntopc = "x"\n')
    result = ingester("check-config", "--config", str(typo))
    assert result.returncode == 2
    assert result.stdout.startswith("FAIL config:") and "topc" in result.stdout

    unreachable = tmp_path / "unreachable.toml"
    unreachable.write_text(
        '[aws]\nendpoint_url = "http://127.0.0.1:9"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:9"\nconnect_timeout_seconds = 2\n'
        '[telemetry]\nlog_level = "error"\n'
    )
    result = ingester("check-config", "--config", str(unreachable))
    assert result.returncode == 4  # the first FAIL line's code: AWS (docs/exit-codes.md)
    assert "FAIL aws credentials:" in result.stdout
    assert "FAIL kafka: cannot connect to Kafka at 127.0.0.1:9" in result.stdout


def test_demo_the_first_command_of_the_readme(tmp_path: Path) -> None:
    """``ingester demo`` (what scripts/demo.sh runs), small: every generated record out, every digest hour
    reconciled complete without an alert, and the restart sends nothing."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / ".ingester-demo").write_text("")  # a previous demo's folder: emptied, not refused
    (out / "stale.ndjson").write_text("{}\n")
    result = ingester(
        "demo",
        "--accounts",
        "2",
        "--regions",
        "us-east-1",
        "--days",
        "1",
        "--files-per-hour",
        "2",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "48 signed hourly digests" in lines[1], lines
    assert "48 complete digest hours reconciled; alerts: none" in lines[3], lines
    assert lines[4].startswith("run 2 (restart): 0 files delivered"), lines
    assert "all generated records present" in lines[5], lines
    assert len((out / "events.ndjson.integrity.ndjson").read_text().splitlines()) == 48
    assert not (out / "stale.ndjson").exists() and (out / ".ingester-demo").exists()

"""The exit-code table's pure parts: errors -> codes, a run's outcome, N workers' codes -> the parent's, and the
demo's guards (its output folder, its regions, its self-check). The commands themselves: test_exit_codes.py."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ingester.demo.runner import MARKER, DemoReport, check_regions, prepare_output
from ingester.errors import (
    CheckpointError,
    ConfigError,
    DecodeError,
    DiscoveryError,
    ExitCode,
    ObjectGoneError,
    SinkError,
    exit_code_for,
    ingester_errors,
)
from ingester.models import Shard
from ingester.ops.telemetry import RunStatistics, Telemetry
from ingester.pipeline.processes import combined_exit_code, describe_exit, run_exit_code


def stats(*, shards: int, errored: int = 0) -> RunStatistics:
    return RunStatistics(
        objects_delivered=3,
        objects_rejected=0,
        objects_errored=errored,
        records=10,
        dead_letters=0,
        compressed_bytes=1,
        decompressed_bytes=2,
        s3_requests=4,
        elapsed_seconds=1.0,
        shards=shards,
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("x"), ExitCode.CONFIG),
        (DiscoveryError("x"), ExitCode.AWS),
        (ObjectGoneError("x"), ExitCode.AWS),
        (SinkError("x"), ExitCode.SINK),
        (CheckpointError("x"), ExitCode.CHECKPOINT),
        (DecodeError("x"), ExitCode.INTERNAL),  # dead-lettered inside the pipeline: reaching the top is a bug
        (RuntimeError("x"), ExitCode.INTERNAL),
    ],
)
def test_each_class_of_the_tree_has_its_code(error: Exception, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_an_error_group_exits_with_its_first_error_and_a_foreign_part_is_a_bug() -> None:
    group = ExceptionGroup("tasks", [SinkError("down"), ExceptionGroup("inner", [DiscoveryError("later")])])
    assert exit_code_for(group) == ExitCode.SINK
    assert [type(e) for e in ingester_errors(group) or []] == [SinkError, DiscoveryError]
    mixed = ExceptionGroup("tasks", [SinkError("down"), KeyError("bug")])
    assert ingester_errors(mixed) is None
    assert exit_code_for(mixed) == ExitCode.INTERNAL


def test_a_run_once_with_no_shard_or_undelivered_objects_is_not_a_success() -> None:
    clean = Telemetry()
    assert run_exit_code(stats(shards=4), clean, once=True, stopped=False) == ExitCode.OK
    assert run_exit_code(stats(shards=0), clean, once=True, stopped=False) == ExitCode.NOTHING_TO_COLLECT
    assert run_exit_code(stats(shards=4, errored=2), clean, once=True, stopped=False) == ExitCode.INCOMPLETE
    # Without --once it keeps discovering until a signal; with it, a signal before discovery is not "nothing".
    assert run_exit_code(stats(shards=0), clean, once=False, stopped=True) == ExitCode.OK
    assert run_exit_code(stats(shards=0), clean, once=True, stopped=True) == ExitCode.OK


def test_a_shard_that_gave_up_or_never_started_makes_the_run_incomplete() -> None:
    shard = Shard(
        trail_arn="arn:aws:cloudtrail:us-east-1:111111111111:trail/t",
        bucket="gone",
        key_prefix="",
        org_id="",
        account_id="111111111111",
        region="us-east-1",
        reader_account="111111111111",
    )
    gave_up = Telemetry()
    gave_up.shard_fault(shard, "bucket_unavailable", "NoSuchBucket")
    gave_up.shard_gave_up(shard)
    assert run_exit_code(stats(shards=1), gave_up, once=True, stopped=False) == ExitCode.INCOMPLETE
    never_started = Telemetry()  # Supervisor._start failed: no job, so stats.shards == 0, yet there is a shard
    never_started.shard_fault(shard, "credentials", "AssumeRole denied")
    assert run_exit_code(stats(shards=0), never_started, once=True, stopped=False) == ExitCode.INCOMPLETE


SIGTERMED, SIGKILLED = -signal.SIGTERM, -signal.SIGKILL


@pytest.mark.parametrize(
    ("codes", "cause", "signalled", "expected"),
    [
        pytest.param([0, 0], None, set(), 0, id="all-done"),
        pytest.param([5, SIGTERMED], 0, {1}, 5, id="the-cause-not-the-sigterm-the-parent-sent"),
        pytest.param([5, 4], 0, {1}, 5, id="the-cause-not-the-consequence"),
        pytest.param([SIGTERMED, SIGTERMED], None, {0, 1}, 0, id="stopped-by-the-parent-s-forwarded-sigterm"),
        pytest.param([0, SIGTERMED], None, set(), 143, id="a-sigterm-the-parent-did-not-send"),
        pytest.param([SIGKILLED, SIGTERMED], 0, {1}, 137, id="killed-by-sigkill-e-g-oom"),
        pytest.param([3, 3], None, set(), 3, id="no-worker-owns-a-shard"),
        pytest.param([0, 3], None, set(), 0, id="one-worker-owns-no-shard"),
        pytest.param([7, 3, 0], None, set(), 7, id="objects-left-undelivered"),
        pytest.param([0, 1], None, set(), 1, id="a-bug"),
    ],
)
def test_the_parent_exits_as_one_process_would(
    codes: list[int], cause: int | None, signalled: set[int], expected: int
) -> None:
    assert combined_exit_code(codes, cause=cause, signalled=signalled) == expected


def test_the_parent_names_a_signal_as_a_signal() -> None:
    assert describe_exit(SIGKILLED) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(5) == "exited with 5 (SINK)"
    assert describe_exit(42) == "exited with 42"


def test_the_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not created by `ingester demo`"):
        prepare_output(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_the_demo_empties_its_own_folder_and_marks_a_new_one(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "demo"
    prepare_output(fresh)
    assert [p.name for p in fresh.iterdir()] == [MARKER]
    (fresh / "events.ndjson").write_text("{}\n")
    (fresh / "leftover").mkdir()
    (fresh / "leftover" / "x").write_text("x")
    prepare_output(fresh)
    assert [p.name for p in fresh.iterdir()] == [MARKER]


def test_a_demo_folder_from_before_the_marker_is_still_the_demo_s(tmp_path: Path) -> None:
    for name in ("events.ndjson", "events.ndjson.integrity.ndjson", "checkpoints.sqlite"):
        (tmp_path / name).write_text("x")
    prepare_output(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


def test_the_demo_knows_aws_regions_only() -> None:
    check_regions(("us-east-1", "eu-west-1"))
    with pytest.raises(ConfigError, match="mars-1 is not an AWS region"):
        check_regions(("us-east-1", "mars-1"))
    with pytest.raises(ConfigError, match="at least one region"):
        check_regions(())


def test_the_demo_is_complete_only_when_every_generated_record_came_out() -> None:
    assert DemoReport("", generated=10, written=10).complete
    assert not DemoReport("", generated=10, written=9).complete
    assert not DemoReport("", generated=10, written=0).complete

"""``collection.workers = 0`` follows the pod's CPU allowance (cgroup quota, affinity), fed fake cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingester.config import build
from ingester.coordination.partition import Partition
from ingester.pipeline.cpus import cpu_allowance, own_cgroup_dirs, quota_v1, quota_v2, read_quotas
from ingester.pipeline.processes import settings_for_worker


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("200000 100000\n", 2.0), ("150000 100000", 1.5), ("max 100000\n", None), ("", None), ("x 100000", None)],
)
def test_cpu_max_v2(text: str, cpus: float | None) -> None:
    assert quota_v2(text) == cpus


def test_cfs_quota_v1() -> None:
    assert quota_v1("400000\n", "100000\n") == 4.0
    assert quota_v1("-1\n", "100000\n") is None
    assert quota_v1("junk", "100000") is None


@pytest.mark.parametrize(
    ("quotas", "affinity", "workers"),
    [
        ([2.0], 32, 2),  # a pod limited to 2 CPUs on a 32-core node
        ([1.5], 32, 2),  # rounded up
        ([0.25], 32, 1),  # never 0
        ([None], 8, 8),  # no quota: the schedulable CPUs
        ([], 4, 4),  # no cgroup file system
        ([8.0], 3, 3),  # a cpuset narrower than the quota
        ([None, 4.0, 2.0], 16, 2),  # the smallest quota of the hierarchy binds
    ],
)
def test_allowance(quotas: list[float | None], affinity: int, workers: int) -> None:
    assert cpu_allowance(quotas, affinity) == workers


def test_v2_container_with_its_own_namespace(tmp_path: Path) -> None:
    write(tmp_path / "cgroup.controllers", "cpu memory\n")
    write(tmp_path / "cpu.max", "200000 100000\n")
    proc = tmp_path / "proc-self-cgroup"
    write(proc, "0::/\n")
    assert read_quotas(tmp_path, proc) == [2.0]


def test_v2_nested_cgroup_reads_every_ancestor(tmp_path: Path) -> None:
    """Without a cgroup namespace the process sits deep in the host's tree; the pod's limit is above it."""
    write(tmp_path / "cgroup.controllers", "cpu memory\n")
    write(tmp_path / "kubepods" / "pod1" / "cpu.max", "300000 100000\n")
    write(tmp_path / "kubepods" / "pod1" / "c1" / "cpu.max", "max 100000\n")
    proc = tmp_path / "proc-self-cgroup"
    write(proc, "0::/kubepods/pod1/c1\n")
    assert read_quotas(tmp_path, proc) == [None, 3.0]
    assert cpu_allowance(read_quotas(tmp_path, proc), 32) == 3


def test_v1_cpu_controller(tmp_path: Path) -> None:
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "200000\n")
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    write(proc, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")  # not mounted under root: root is its own
    assert read_quotas(tmp_path, proc) == [2.0]


def test_no_cgroup_file_system(tmp_path: Path) -> None:
    assert read_quotas(tmp_path / "absent", tmp_path / "absent-too") == []


def test_own_cgroup_dirs_ignores_a_path_that_is_not_mounted(tmp_path: Path) -> None:
    assert own_cgroup_dirs(tmp_path, "0::/elsewhere/c1\n", None) == [tmp_path]


def test_each_worker_process_holds_its_share_of_the_byte_budget() -> None:
    settings = build({"collection": {"max_inflight_bytes": 300_000_000}})
    shares = [settings_for_worker(settings, Partition(i, 3)).collection.max_inflight_bytes for i in range(3)]
    assert shares == [100_000_000] * 3
    assert settings_for_worker(settings, Partition(0, 1)).collection.max_inflight_bytes == 300_000_000

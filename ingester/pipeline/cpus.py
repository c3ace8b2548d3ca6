"""How many worker processes ``collection.workers = 0`` means: the CPUs this process may use, not the node's.

In a pod limited to 2 CPUs on a 32-core node, ``os.cpu_count()`` says 32: 32 collectors would share 2 CPUs of
quota (each throttled most of each period) and hold 32 byte budgets against one memory limit. What bounds the
process is the smallest of:
- the cgroup CPU quota: v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``), v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` (quota -1 = none), of the process's own cgroup and of every ancestor (a limit set on the
  pod's cgroup binds its containers'), as Go's runtime reads it for GOMAXPROCS;
- the CPUs it may be scheduled on (``os.sched_getaffinity``: cpusets, ``taskset``).
A quota of 1.5 CPUs gives 2 workers (ceil: the half CPU is usable, throttling evens it out), never fewer than 1.

The parsing is pure (:func:`cpu_allowance` over file contents) so the unit tests feed it fake cgroup files;
:func:`read_quotas` is the one part that reads the real ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Where cgroup v1 mounts the cpu controller, by distribution.
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def quota_v2(cpu_max: str) -> float | None:
    """CPUs of a cgroup v2 ``cpu.max`` (``"200000 100000"`` = 2.0), None for ``"max ..."`` or unreadable text."""
    parts = cpu_max.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def quota_v1(cfs_quota_us: str, cfs_period_us: str) -> float | None:
    """CPUs of cgroup v1's CFS quota and period, None for no quota (-1) or unreadable text."""
    try:
        quota, period = int(cfs_quota_us.strip()), int(cfs_period_us.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_allowance(quotas: Iterable[float | None], affinity: int) -> int:
    """Worker processes for these quotas (None = no limit at that level) and this many schedulable CPUs."""
    limits = [quota for quota in quotas if quota is not None]
    allowed = affinity if not limits else min(affinity, math.ceil(min(limits)))
    return max(1, allowed)


def own_cgroup_dirs(root: Path, self_cgroup: str, controller: str | None) -> list[Path]:
    """The process's cgroup folder under ``root`` and its ancestors up to ``root``, deepest first.

    ``self_cgroup`` is ``/proc/self/cgroup``: ``0::/kubepods/pod1/c1`` on v2, ``4:cpu,cpuacct:/kubepods/...`` on
    v1 (``controller`` names the v1 line to use). In a container with its own cgroup namespace the path is ``/``:
    the container's cgroup is ``root`` itself. A path that is not mounted there (no namespace, another mount)
    leaves ``root`` alone."""
    path = ""
    for line in self_cgroup.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if (controller is None and fields[0] == "0" and fields[1] == "") or (
            controller is not None and controller in fields[1].split(",")
        ):
            path = fields[2]
            break
    dirs = [root]
    current = root
    for part in [p for p in path.split("/") if p]:
        current = current / part
        if not current.is_dir():
            return [root]
        dirs.append(current)
    return dirs[::-1]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_quotas(root: Path = CGROUP_ROOT, self_cgroup: Path = PROC_SELF_CGROUP) -> list[float | None]:
    """The CPU quotas of this process's cgroup and its ancestors, v2 if ``root`` is the unified hierarchy,
    else v1's cpu controller; empty when there is no cgroup file system (not Linux, or not mounted)."""
    membership = _read(self_cgroup) or ""
    if (root / "cgroup.controllers").exists():
        return [
            quota_v2(text)
            for folder in own_cgroup_dirs(root, membership, None)
            if (text := _read(folder / "cpu.max")) is not None
        ]
    for name in _V1_CPU_DIRS:
        mount = root / name
        if (mount / "cpu.cfs_quota_us").exists():
            quotas: list[float | None] = []
            for folder in own_cgroup_dirs(mount, membership, "cpu"):
                quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                if quota is not None and period is not None:
                    quotas.append(quota_v1(quota, period))
            return quotas
    return []


def default_workers() -> int:
    """``collection.workers = 0``: one worker per CPU this process is allowed (see the module docstring)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    return cpu_allowance(read_quotas(), affinity)

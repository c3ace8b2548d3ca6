"""One collector per SQLite checkpoint: an exclusive ``flock`` on ``<checkpoint path>.lock``.

Two collectors on one checkpoint file would both list every shard and both send every file (each run's records
twice), and their commits would interleave. The lock is taken before the store is opened and held until the
process ends; the kernel drops it when the process dies, however it dies (kill -9 included), so a stale lock
cannot exist and nothing has to be cleaned up. The file holds who took it (pid, host, start time, command) for
the refusal message only: whether the store is locked is asked of the kernel, never read from the file, and the
file is never deleted (deleting a lock file that another process is about to open is how two holders happen).

``ingester run --workers N`` shares one store between N processes (WAL mode, each writing its own shards): the
parent takes the lock for the run as a whole, and each child checks, rather than takes, it
(:func:`check_held_by`): the lock must be held, and by the child's parent. A second ``ingester run`` on the same
file is refused however many workers either has. ``checkpoint reset`` and ``checkpoint rebuild`` take the lock
too, so they refuse while a collector runs; ``checkpoint show`` only reads (SQLite readers never block a WAL
writer) and takes nothing.

``flock`` is per host on most network filesystems (NFS emulates it with byte-range locks since Linux 2.6.12;
some FUSE filesystems ignore it): keep the checkpoint on a local volume, as the chart's StatefulSet does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from ingester.errors import CheckpointError, CheckpointLockedError


class LockHolder(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds the lock, as written by the holder when it took it."""

    pid: int
    host: str
    # Unix seconds.
    since: float
    command: str = ""

    def describe(self) -> str:
        """``pid 4242 on host collector-0 since 2026-01-05T10:00:00Z (ingester run --once)``."""
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        command = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on host {self.host} since {when}{command}"


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".lock")


def read_holder(path: Path) -> LockHolder | None:
    """What the lock file says; None when it is missing, empty or unreadable (being written, or an old format)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=LockHolder)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _command() -> str:
    """``ingester run --once --config ...``, however it was started (console script or ``python -m ingester``)."""
    if not sys.argv:
        return ""
    name = os.path.basename(sys.argv[0])
    name = "ingester" if name in ("__main__.py", "-m", "") else name
    return " ".join([name, *sys.argv[1:]])[:200]


class StoreLock:
    """The held lock; :meth:`release` (or the process ending) lets the next collector in."""

    def __init__(self, path: Path, fd: int, holder: LockHolder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, store_path: Path) -> StoreLock:
        """Take the lock without waiting, or raise :class:`CheckpointLockedError` naming the holder."""
        path = lock_path(store_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CheckpointError(f"cannot open the checkpoint lock {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise locked_error(store_path, read_holder(path)) from None
        except OSError as exc:
            os.close(fd)
            raise CheckpointError(f"cannot lock {path}: {exc}") from exc
        holder = LockHolder(pid=os.getpid(), host=socket.gethostname(), since=time.time(), command=_command())
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, msgspec.json.encode(holder) + b"\n", 0)
        except OSError as exc:
            os.close(fd)
            raise CheckpointError(f"cannot write the checkpoint lock {path}: {exc}") from exc
        return cls(path, fd, holder)

    def release(self) -> None:
        """Idempotent. The file stays (module docstring); its content is stale once released, and ignored."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def locked_error(store_path: Path, holder: LockHolder | None) -> CheckpointLockedError:
    who = holder.describe() if holder is not None else "another process (it did not say which)"
    return CheckpointLockedError(
        f"the checkpoint store {store_path} is in use by {who}: two collectors on one checkpoint would each "
        "send every file; stop that one first (or give this one its own checkpoint.path)"
    )


def is_locked(store_path: Path) -> bool:
    """Whether some process holds the lock right now (a probe: takes and drops it when free)."""
    path = lock_path(store_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CheckpointError(f"cannot open the checkpoint lock {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops a lock it took
    return False


def check_held_by(store_path: Path, pid: int) -> None:
    """A worker process of ``run --workers N``: its parent (``pid``) must hold the lock for the run.

    Refuses when nobody holds it (the parent did not take it: a bug, or a child started by hand) and when
    another process does (the parent lost the race to a second collector, which then runs instead)."""
    holder = read_holder(lock_path(store_path))
    if not is_locked(store_path):
        raise CheckpointError(
            f"the checkpoint store {store_path} is not locked by this worker's parent (pid {pid}): "
            "worker processes run under `ingester run --workers N`, which takes the lock for them"
        )
    if holder is None or holder.pid != pid or holder.host != socket.gethostname():
        raise locked_error(store_path, holder)

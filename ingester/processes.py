"""``ingester run --workers N``: one collector process per core, sharing nothing hot.

Decode and normalize are CPU-bound Python, so one event loop uses one core. The parent starts N children
(spawn, not fork: no inherited event loop or sockets), each running the whole pipeline for the shards its
:class:`~ingester.partition.Partition` owns, and supervises them:
- SIGTERM/SIGINT are forwarded, so every child drains in order; a second signal kills them at once;
- a child that dies takes the others down (exit code non-zero), so the orchestrator restarts the pod whole,
  rather than running with a share of the shards silently uncollected;
- children die with the parent (PR_SET_PDEATHSIG), so a SIGKILL of the parent never leaves orphans that
  would collect the same shards as its replacement.
Per child: metrics/health on ``metrics_port + index``; in exactly-once mode ``transactional_id-w<index>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess

import msgspec
import uvloop

from ingester.config import Settings
from ingester.errors import IngesterError
from ingester.partition import Partition
from ingester.signals import install_signal_handlers
from ingester.telemetry import configure_logging

_PR_SET_PDEATHSIG = 1


def settings_for_worker(settings: Settings, partition: Partition) -> Settings:
    """What must differ between worker processes: their listening port and their transactional id."""
    if partition.count == 1:
        return settings
    telemetry = settings.telemetry
    port = telemetry.metrics_port + partition.index if telemetry.metrics_port else 0
    kafka = msgspec.structs.replace(
        settings.kafka, transactional_id=f"{settings.kafka.transactional_id}-w{partition.index}"
    )
    return msgspec.structs.replace(
        settings, telemetry=msgspec.structs.replace(telemetry, metrics_port=port), kafka=kafka
    )


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's SIGTERM forwarding still applies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(settings: Settings, partition: Partition, once: bool) -> None:
    _die_with_parent()
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)

    async def go() -> None:
        from ingester.runtime import run

        stop = asyncio.Event()
        install_signal_handlers(stop)
        stats = await run(settings, stop=stop, once=once, partition=partition)
        print(msgspec.json.encode({"worker": partition.label, **msgspec.structs.asdict(stats)}).decode(), flush=True)

    try:
        uvloop.run(go())
    except* IngesterError as group:
        for exc in group.exceptions:
            print(f"ingester worker {partition.label}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def run_workers(settings: Settings, *, workers: int, once: bool) -> int:
    """Start, supervise and reap the worker processes; returns the exit code for the parent."""
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    for index in range(workers):
        partition = Partition(index, workers)
        child: BaseProcess = context.Process(
            target=_child,
            args=(settings_for_worker(settings, partition), partition, once),
            name=f"ingester-worker-{index}",
        )
        child.start()
        children.append(child)
    signals_seen = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM if signals_seen == 1 else signal.SIGKILL)
        if signals_seen > 1:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(child.is_alive() for child in children):
        failed = [c for c in children if not c.is_alive() and c.exitcode not in (0, None)]
        if failed:
            print(f"ingester: {failed[0].name} exited with {failed[0].exitcode}; stopping the others", file=sys.stderr)
            for other in children:
                if other.is_alive() and other.pid is not None:
                    os.kill(other.pid, signal.SIGTERM)
            for other in children:
                other.join()
            break
        time.sleep(0.2)
    codes = [child.exitcode or 0 for child in children]
    return max((128 - code if code < 0 else code for code in codes), default=0)  # -N: killed by signal N

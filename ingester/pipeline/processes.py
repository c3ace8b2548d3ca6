"""``ingester run --workers N``: one collector process per core, sharing nothing hot.

Decode and normalize are CPU-bound Python, so one event loop uses one core. The parent starts N children
(spawn, not fork: no inherited event loop or sockets), each running the whole pipeline for the shards its
:class:`~ingester.coordination.partition.Partition` owns, and supervises them:
- SIGTERM/SIGINT are forwarded, so every child drains in order; a second signal kills them at once;
- a child that dies takes the others down (exit code non-zero), so the orchestrator restarts the pod whole,
  rather than running with a share of the shards silently uncollected;
- children die with the parent (PR_SET_PDEATHSIG), so a SIGKILL of the parent never leaves orphans that
  would collect the same shards as its replacement.
Per child: in exactly-once mode ``transactional_id-w<index>``; health and metrics on a Unix socket, which the
parent serves together, for the whole pod, on ``metrics_port`` (ops/pod.py): one port for the probes, the
Service and Prometheus, however many workers.

Exit codes are the table's (:class:`~ingester.errors.ExitCode`, docs/exit-codes.md), the same as one process
running alone (cli.py uses :func:`run_exit_code` too): a child exits with its error's or its run's code, and the
parent exits with the code of the child that failed first (the cause; the others were stopped because of it),
or 128+N for a child killed by signal N that the parent did not send. With ``--once``, a child that owns no
shard exits NOTHING_TO_COLLECT, which is a failure only if every child does: the partitions together cover every
shard discovered.
Children run in their own process group: a terminal's Ctrl-C reaches the parent only, which forwards it once
(otherwise each child would see SIGINT and then the forwarded SIGTERM, a second signal: exit at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from multiprocessing.process import BaseProcess

import msgspec
import structlog
import uvloop

from ingester.config import Settings
from ingester.coordination.partition import Partition
from ingester.errors import ExitCode, IngesterError, exit_code_for, ingester_errors
from ingester.ops.pod import PodEndpoint, WorkerSocket
from ingester.ops.signals import install_signal_handlers
from ingester.ops.telemetry import RunStatistics, Telemetry, configure_logging

log = structlog.get_logger("ingester.pipeline.processes")

SHARDS_NAMED = 20
NOTHING_TO_COLLECT = "discovery found no shard: no CloudTrail trail delivers to S3 in the accounts and regions"

_PR_SET_PDEATHSIG = 1
# A child that ran to its end: not a reason to stop the others (see combined_exit_code for what they add up to).
FINISHED = frozenset({ExitCode.OK, ExitCode.NOTHING_TO_COLLECT, ExitCode.INCOMPLETE})


def run_exit_code(stats: RunStatistics, telemetry: Telemetry, *, once: bool, stopped: bool) -> ExitCode:
    """The code of a pipeline run that returned. With ``once`` and no stop signal, three ways are not success:

    - no shard (NOTHING_TO_COLLECT): ``stats.shards`` counts the shards this process started, all of them when
      it runs alone, and a shard that could not start is a failing one, not an absent one;
    - a shard that failed every attempt, or never started, or an account discovery could not describe
      (INCOMPLETE): ``telemetry``'s failing / gave-up shards and failed accounts;
    - objects that kept failing after max_attempts (INCOMPLETE): their shard's checkpoint waits for them.
    Stopped by a signal (or never ``once``), the run drained what it had: the next start collects the rest."""
    if not once or stopped:
        return ExitCode.OK
    failed = telemetry.gave_up_shards | telemetry.failing_shards.keys() | telemetry.failed_accounts
    if stats.shards == 0 and not failed:
        return ExitCode.NOTHING_TO_COLLECT
    if failed or stats.objects_errored:
        return ExitCode.INCOMPLETE
    return ExitCode.OK


def report_outcome(
    code: ExitCode, stats: RunStatistics, telemetry: Telemetry, *, worker: str | None = None
) -> ExitCode:
    """One warning per way a ``--once`` run was not a success (the exit code alone does not say which shard)."""
    context = {"worker": worker} if worker else {}
    if code is ExitCode.NOTHING_TO_COLLECT:
        if worker:  # other workers may own shards: the parent warns when none does
            log.info("worker_owns_no_shard", **context)
        else:
            log.warning("nothing_to_collect", detail=NOTHING_TO_COLLECT)
    elif code is ExitCode.INCOMPLETE:
        failing = (
            {shard: "gave up" for shard in telemetry.gave_up_shards}
            | telemetry.failing_shards
            | {f"account {account}": "discovery failed" for account in telemetry.failed_accounts}
        )
        log.warning(
            "run_incomplete",
            shards_failed=len(failing),
            objects_errored=stats.objects_errored,
            detail="the next run collects them (their checkpoints did not move past them)",
            **context,
        )
        # Each failed shard already logged every attempt: name the first few again, at the end, where one looks.
        for shard, cause in sorted(failing.items())[:SHARDS_NAMED]:
            log.warning("shard_not_collected", shard=shard, cause=cause, **context)
    return code


def describe_exit(exitcode: int) -> str:
    """``exited with 5 (SINK)`` / ``was killed by signal 9 (SIGKILL)``, for the parent's one line."""
    if exitcode < 0:
        return f"was killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
    try:
        return f"exited with {exitcode} ({ExitCode(exitcode).name})"
    except ValueError:
        return f"exited with {exitcode}"


def combined_exit_code(codes: Sequence[int | None], *, cause: int | None, signalled: Collection[int]) -> int:
    """The parent's exit code from its children's (``multiprocessing`` exit codes: -N = killed by signal N).

    ``cause`` is the index of the child whose failure made the parent stop the others; ``signalled`` the
    children the parent sent SIGTERM. A child killed by that SIGTERM had not installed its drain handler yet
    (or had already finished): it collected nothing, so it is stopped, not failed."""

    def code_of(index: int) -> int | None:
        code = codes[index]
        if code is None or (code == -signal.SIGTERM and index in signalled):
            return None
        return 128 - code if code < 0 else code

    if cause is not None and (first := code_of(cause)) is not None:
        return first
    outcomes = [code for index in range(len(codes)) if (code := code_of(index)) is not None]
    failed = [code for code in outcomes if code not in FINISHED]
    if failed:
        return failed[0]
    if ExitCode.INCOMPLETE in outcomes:
        return ExitCode.INCOMPLETE
    if outcomes and all(code == ExitCode.NOTHING_TO_COLLECT for code in outcomes):
        return ExitCode.NOTHING_TO_COLLECT
    return ExitCode.OK


def settings_for_worker(settings: Settings, partition: Partition) -> Settings:
    """What must differ between worker processes: their transactional id, their share of
    ``collection.max_inflight_bytes`` (the budget is the pod's: its memory limit is sized on it, so N processes
    each hold 1/N of it rather than N times the whole); and none listens on the port (the parent serves it for
    all of them)."""
    if partition.count == 1:
        return settings
    telemetry = msgspec.structs.replace(settings.telemetry, metrics_port=0)
    kafka = msgspec.structs.replace(
        settings.kafka, transactional_id=f"{settings.kafka.transactional_id}-w{partition.index}"
    )
    collection = msgspec.structs.replace(
        settings.collection, max_inflight_bytes=max(1, settings.collection.max_inflight_bytes // partition.count)
    )
    return msgspec.structs.replace(settings, telemetry=telemetry, kafka=kafka, collection=collection)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's SIGTERM forwarding still applies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(settings: Settings, partition: Partition, once: bool, health_socket: str | None) -> None:
    _die_with_parent()
    os.setpgrp()  # out of the terminal's process group: its Ctrl-C is the parent's to forward
    # A SIGTERM before the event loop's handler exists is remembered, not fatal: the run starts and drains at once.
    early: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: early.append(signum))
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)

    async def go() -> ExitCode:
        from ingester.pipeline.runtime import run

        stop = asyncio.Event()
        install_signal_handlers(stop)
        if early:
            stop.set()
        telemetry = Telemetry()
        stats = await run(
            settings,
            stop=stop,
            once=once,
            partition=partition,
            telemetry=telemetry,
            health_socket=health_socket,
            lock_held_by=os.getppid(),
        )
        print(msgspec.json.encode({"worker": partition.label, **msgspec.structs.asdict(stats)}).decode(), flush=True)
        code = run_exit_code(stats, telemetry, once=once, stopped=stop.is_set())
        return report_outcome(code, stats, telemetry, worker=partition.label)

    try:
        code = uvloop.run(go())
    except (IngesterError, BaseExceptionGroup) as exc:
        errors = ingester_errors(exc)
        if errors is None:
            raise  # a bug: the traceback, and exit code 1 (INTERNAL)
        for error in errors:
            print(f"ingester worker {partition.label}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        code = exit_code_for(exc)
    finally:
        # The loop has removed its handler: a SIGTERM from the parent now must not replace this child's code.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code)


def run_workers(settings: Settings, *, workers: int, once: bool) -> int:
    """Take the checkpoint's lock for the whole run (the children check that this process holds it), serve the
    pod's health and metrics (when metrics_port is set), then start, supervise and reap the worker processes;
    returns the exit code for the parent. A second collector on the same checkpoint fails here with
    CheckpointLockedError, before any child starts."""
    from ingester.pipeline.runtime import lock_store, prepare_shared_store

    lock = lock_store(settings)
    try:
        prepare_shared_store(settings)
        port = settings.telemetry.metrics_port
        if not port:
            return _supervise(settings, workers=workers, once=once, sockets=[None] * workers)
        # In the temporary directory (the chart mounts a writable /tmp): a Unix socket path must stay short.
        with tempfile.TemporaryDirectory(prefix="ingester-") as directory:
            sockets = [os.path.join(directory, f"worker-{index}.sock") for index in range(workers)]
            labelled = [WorkerSocket(Partition(index, workers).label, path) for index, path in enumerate(sockets)]
            with PodEndpoint(labelled, port):
                return _supervise(settings, workers=workers, once=once, sockets=list(sockets))
    finally:
        if lock is not None:
            lock.release()


def _supervise(settings: Settings, *, workers: int, once: bool, sockets: Sequence[str | None]) -> int:
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    for index in range(workers):
        partition = Partition(index, workers)
        child: BaseProcess = context.Process(
            target=_child,
            args=(settings_for_worker(settings, partition), partition, once, sockets[index]),
            name=f"ingester worker {partition.label}",
        )
        child.start()
        children.append(child)
    signals_seen = 0
    signalled: set[int] = set()

    def terminate() -> None:
        """SIGTERM, once per child: a second one would make a draining child exit at once."""
        for index, proc in enumerate(children):
            if index not in signalled and proc.pid is not None and proc.is_alive():
                signalled.add(index)
                os.kill(proc.pid, signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            terminate()
            return
        for proc in children:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    cause: int | None = None
    while cause is None:
        alive = any(child.is_alive() for child in children)  # before the codes: a child ending now is seen
        cause = _first_failure(children, signalled)
        if not alive:
            break
        time.sleep(0.2)
    if cause is not None:
        failed = children[cause]
        print(
            f"ingester: {failed.name} {describe_exit(failed.exitcode or 0)}; stopping the others",
            file=sys.stderr,
            flush=True,
        )
        terminate()
    for child in children:
        child.join()
    code = combined_exit_code([child.exitcode for child in children], cause=cause, signalled=signalled)
    if code == ExitCode.NOTHING_TO_COLLECT:
        log.warning("nothing_to_collect", detail=NOTHING_TO_COLLECT)
    return code


def _first_failure(children: Sequence[BaseProcess], signalled: Collection[int]) -> int | None:
    """The first child (by index) that ended with a failure the parent did not cause."""
    for index, child in enumerate(children):
        code = child.exitcode
        if code is None or code in FINISHED or (code == -signal.SIGTERM and index in signalled):
            continue
        return index
    return None

"""CommitGate (ingester/sinks/transactional.py): a parked unit lets a commit run, and resumes only after it."""

from __future__ import annotations

import asyncio

from ingester.sinks.transactional import CommitGate


async def test_a_commit_waits_for_open_units() -> None:
    gate, order = CommitGate(), list[str]()

    async def commit() -> None:
        async with gate.exclusive():
            order.append("commit")

    async with gate.unit():
        committing = asyncio.create_task(commit())
        await asyncio.sleep(0.01)
        order.append("unit done")
    await committing
    assert order == ["unit done", "commit"]


async def test_a_parked_unit_lets_the_commit_run_and_resumes_after_it() -> None:
    gate, order = CommitGate(), list[str]()
    committed = asyncio.Event()

    async def commit() -> None:
        async with gate.exclusive():
            order.append("commit")
            await asyncio.sleep(0.01)
            committed.set()

    async with gate.unit():
        order.append("sent")
        async with gate.parked():
            committing = asyncio.create_task(commit())
            await committed.wait()
        order.append("resent")
    await committing
    assert order == ["sent", "commit", "resent"]


async def test_leaving_the_park_waits_for_a_running_commit() -> None:
    gate, order = CommitGate(), list[str]()
    inside = asyncio.Event()

    async def commit() -> None:
        async with gate.exclusive():
            inside.set()
            await asyncio.sleep(0.05)
            order.append("commit")

    async with gate.unit():
        async with gate.parked():
            committing = asyncio.create_task(commit())
            await inside.wait()
        order.append("resumed")
    await committing
    assert order == ["commit", "resumed"]

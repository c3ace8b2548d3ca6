"""One ``/metrics``, ``/livez`` and ``/readyz`` for a pod of worker processes (``ingester run --workers N``).

Each worker keeps its own registry and its own health (ops/telemetry.py, ops/health.py) and serves them on a
Unix socket in a private directory: no port to allocate per worker, nothing reachable from the network. The
parent serves the pod on ``telemetry.metrics_port`` and asks every worker on each request:

- ``/metrics``: every worker's series, each with a ``worker`` label (``1/2``, as the logs name the worker), and
  ``ingester_worker_up{worker}`` (0 = that worker did not answer this scrape). Series are relabelled, never
  added up: each figure is the one its worker computed, so ``sum without (worker) (...)`` (or max) is the pod's.
- ``/readyz``: 200 when every worker is ready; otherwise 503 with one line per worker that is not and its reason
  (``worker 2/2: sink stalled for 70 s: ...``). Every worker's ``degraded:`` lines follow, as one process
  writes them.
- ``/livez``: 503 when a worker's server is up but does not answer within HEALTH_TIMEOUT_SECONDS (its event
  loop is stuck). A worker not serving yet (starting) or any more (exited) is not a liveness failure: the
  parent itself stops the pod when a worker exits (pipeline/processes.py), and readiness shows it.

Why not prometheus-client's multiprocess mode: it serves only values the processes wrote to shared files, so
the figures computed when scraped, exactly the ones that matter in an outage (``ingester_shard_lag_seconds``
keeps growing while the pipeline is stalled; ``ingester_sink_stalled_seconds`` is a function gauge), would be
lost or frozen, and it says nothing about readiness. Asking the workers keeps every figure as one process
computes it, and the probes see every worker.

The server runs in a thread of the parent, on its own event loop: the parent's main thread supervises the
worker processes and forwards signals (pipeline/processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType

import aiohttp
import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

# Below the probes' timeoutSeconds (the chart's startup probe allows 3 s), so a slow worker is named in the
# body rather than failing the probe without a word.
HEALTH_TIMEOUT_SECONDS = 2.0
# Below the ServiceMonitor's scrapeTimeout (10 s by default): a worker that cannot answer costs its series
# (ingester_worker_up 0), not the whole scrape.
METRICS_TIMEOUT_SECONDS = 8.0
WORKER_LABEL = "worker"


class WorkerSocket(msgspec.Struct, frozen=True):
    """Where one worker serves its health and metrics: its label (``1/2``) and its Unix socket's path."""

    label: str
    path: str


class Answer(msgspec.Struct, frozen=True):
    """One worker's answer to one request. ``status`` 0: no answer, ``error`` says why."""

    label: str
    status: int
    body: str = ""
    error: str = ""
    timed_out: bool = False


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge_metrics(answers: Sequence[Answer]) -> bytes:
    """The workers' exposition texts as one, each sample labelled with its worker; ``ingester_worker_up``."""
    families: dict[str, Metric] = {}
    for answer in answers:
        if answer.status != 200:
            continue
        for family in text_string_to_metric_families(answer.body):
            labelled = [
                sample._replace(labels={**sample.labels, WORKER_LABEL: answer.label}) for sample in family.samples
            ]
            if (merged := families.get(family.name)) is None:
                family.samples = labelled
                families[family.name] = family
            else:
                merged.samples.extend(labelled)
    up = GaugeMetricFamily(
        "ingester_worker_up", "1 if the worker process answered this scrape, 0 if not", labels=[WORKER_LABEL]
    )
    for answer in answers:
        up.add_metric([answer.label], 1.0 if answer.status == 200 else 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), up]))
    return generate_latest(registry)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def readiness(answers: Sequence[Answer]) -> tuple[int, str]:
    """200 ``ready`` when every worker is; else 503 naming each worker that is not and why. Then the
    ``degraded:`` lines of every worker (a worker writes them after its first line)."""
    reasons: list[str] = []
    degraded: list[str] = []
    for answer in answers:
        first, *rest = _lines(answer.body) or [""]
        degraded.extend(rest)
        if answer.status == 200:
            continue
        reason = first if answer.status else (answer.error or "no answer")
        reasons.append(f"worker {answer.label}: {reason}")
    if reasons:
        return 503, "".join(f"{line}\n" for line in reasons + degraded)
    return 200, "".join(f"{line}\n" for line in ["ready", *degraded])


def liveness(answers: Sequence[Answer]) -> tuple[int, str]:
    """503 when a worker's server took the request but did not answer in time: its event loop is stuck."""
    stuck = [f"worker {answer.label}: {answer.error}" for answer in answers if answer.timed_out]
    if stuck:
        return 503, "".join(f"{line}\n" for line in stuck)
    return 200, "ok\n"


async def _ask(session: aiohttp.ClientSession, worker: WorkerSocket, path: str, seconds: float) -> Answer:
    try:
        async with asyncio.timeout(seconds):
            async with session.get(f"http://worker{path}") as response:
                return Answer(worker.label, response.status, await response.text())
    except TimeoutError:
        return Answer(worker.label, 0, error=f"no answer within {seconds:g} s (event loop stuck?)", timed_out=True)
    except aiohttp.ClientError as exc:  # no socket yet (starting) or no server any more (exited)
        return Answer(worker.label, 0, error=f"not serving ({type(exc).__name__}): starting, or exited")


def application(sessions: Sequence[tuple[WorkerSocket, aiohttp.ClientSession]]) -> web.Application:
    async def ask_all(path: str, seconds: float) -> list[Answer]:
        return list(await asyncio.gather(*(_ask(session, worker, path, seconds) for worker, session in sessions)))

    async def livez(_: web.Request) -> web.Response:
        status, text = liveness(await ask_all("/livez", HEALTH_TIMEOUT_SECONDS))
        return web.Response(status=status, text=text)

    async def readyz(_: web.Request) -> web.Response:
        status, text = readiness(await ask_all("/readyz", HEALTH_TIMEOUT_SECONDS))
        return web.Response(status=status, text=text)

    async def metrics(_: web.Request) -> web.Response:
        body = merge_metrics(await ask_all("/metrics", METRICS_TIMEOUT_SECONDS))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(
    workers: Sequence[WorkerSocket], port: int, stop: asyncio.Event, listening: Callable[[], None] = lambda: None
) -> None:
    """Serve the pod on ``port`` until ``stop`` is set; ``listening`` is called once the port listens."""
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            (
                worker,
                await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.UnixConnector(worker.path))),
            )
            for worker in workers
        ]
        runner = web.AppRunner(application(sessions), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "0.0.0.0", port).start()  # all interfaces: the kubelet probes the pod IP
        listening()
        await stop.wait()


class PodEndpoint:
    """``with PodEndpoint(workers, port):`` serves the pod from a thread until the block ends.

    Entering waits until the port listens and raises what stopped it (a port in use), so the parent fails
    before it starts any worker; leaving stops the server and joins the thread."""

    def __init__(self, workers: Sequence[WorkerSocket], port: int) -> None:
        self._workers = list(workers)
        self._port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ingester-pod-endpoint", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self._workers, self._port, self._stop, self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the parent's thread: __enter__ or __exit__ raises it
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> PodEndpoint:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already (the server failed)
                loop.call_soon_threadsafe(stop.set)
        self._thread.join()
        if self._error is not None and kind is None:
            raise self._error

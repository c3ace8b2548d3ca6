"""HTTP endpoint for Kubernetes and Prometheus: ``/livez``, ``/readyz``, ``/metrics`` (aiohttp, in the loop).

- ``/livez``: 200 while the event loop answers; a wedged loop fails it and the kubelet restarts the pod.
- ``/readyz``: "this pod is collecting". 200 once the first discovery pass has finished and the sink is
  connected and acknowledging; 503 with the reason before that, during a drain, and while the sink has failed
  to acknowledge for ``telemetry.stall_seconds`` (a Kafka outage stalls the whole pipeline: a rollout must
  stop there, and the Service shows it; a restart would not help, so liveness stays 200). Shards that fail on
  their own (a missing bucket, a denied role) do not make the pod unready, since the other shards flow: the
  200 body lists them as ``degraded:`` lines with their cause, as does ``ingester_shards_failing``.
- ``/metrics``: the Prometheus text format of this run's registry.
Served from the runtime's TaskGroup, so it starts and stops with the pipeline. A worker process of
``run --workers N`` serves on a Unix socket instead of the port: the parent answers for the pod on the port,
asking every worker (ops/pod.py).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingester.ops.telemetry import Telemetry


def application(telemetry: Telemetry) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        degraded = [f"degraded: {shard}: {cause}\n" for shard, cause in sorted(telemetry.failing_shards.items())]
        if telemetry.ready:
            return web.Response(text="ready\n" + "".join(degraded))
        stalled = (
            f"sink stalled for {telemetry.sink_stalled_seconds():.0f} s: {telemetry.sink_error or 'no acknowledgement'}"
        )
        checks = (
            ("discovery pending", telemetry.discovered),
            ("sink not connected", telemetry.sink_connected),
            ("draining", not telemetry.draining),
            (stalled, not telemetry.sink_stalled),
        )
        reasons = [name for name, ok in checks if not ok]
        return web.Response(status=503, text=", ".join(reasons) + "\n" + "".join(degraded))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(telemetry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(telemetry: Telemetry, port: int, stop: asyncio.Event, *, socket_path: str | None = None) -> None:
    """Serve until ``stop`` is set, on ``socket_path`` if given, else on ``port``; port 0 disables the endpoint."""
    if not port and not socket_path:
        return
    runner = web.AppRunner(application(telemetry), access_log=None)
    await runner.setup()
    try:
        site: web.BaseSite = (
            web.UnixSite(runner, socket_path)
            if socket_path
            else web.TCPSite(runner, "0.0.0.0", port)  # all interfaces: the kubelet probes the pod IP
        )
        await site.start()
        await stop.wait()
    finally:
        await runner.cleanup()

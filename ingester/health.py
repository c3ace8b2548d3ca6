"""HTTP endpoint for Kubernetes and Prometheus: ``/livez``, ``/readyz``, ``/metrics`` (aiohttp, in the loop).

- ``/livez``: 200 while the event loop answers; a wedged loop fails it and the kubelet restarts the pod.
- ``/readyz``: 200 once the first discovery pass has finished and the sink is connected, else 503 with the
  reason; during a drain it turns 503 again.
- ``/metrics``: the Prometheus text format of this run's registry.
Served from the runtime's TaskGroup, so it starts and stops with the pipeline.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingester.telemetry import Telemetry


def application(telemetry: Telemetry) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if telemetry.ready:
            return web.Response(text="ready\n")
        checks = (
            ("discovery pending", telemetry.discovered),
            ("sink not connected", telemetry.sink_connected),
            ("draining", not telemetry.draining),
        )
        reasons = [name for name, ok in checks if not ok]
        return web.Response(status=503, text=", ".join(reasons) + "\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(telemetry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(telemetry: Telemetry, port: int, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; port 0 disables the endpoint."""
    if not port:
        return
    runner = web.AppRunner(application(telemetry), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()  # all interfaces: the kubelet probes the pod IP
        await stop.wait()
    finally:
        await runner.cleanup()

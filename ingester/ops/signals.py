"""Process signals: the first SIGTERM/SIGINT starts an ordered drain, a second one exits at once.

Exiting at once is safe: every checkpoint commit is a transaction (SQLite, or Kafka's), so an interrupted run
re-sends at most what was not yet acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: drain in order. Second: exit now."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        print(f"ingester: signal {signum}: draining (send again to exit at once)", file=sys.stderr, flush=True)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

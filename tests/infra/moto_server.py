"""moto's HTTP server in its own process: the real S3/STS/Organizations/CloudTrail/EC2 endpoint of the tests.

A separate process, not a thread, so the server's Python work does not share the GIL with the code under
test, and so a test talks to it over real HTTP exactly as ingester talks to AWS. State is reset between tests
through moto's own ``/moto-api/reset`` endpoint rather than by restarting the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.infra.kafka_broker import free_port


class MotoServer:
    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server process (benchmarks charge its CPU time separately)."""
        if self._process is None:
            raise RuntimeError("moto server not started")
        return self._process.pid

    def seed(self, value: int) -> None:
        """moto draws account, organization and request ids from one generator: seeding it fixes them."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/seed?a={value}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def start(self, timeout_s: float = 30.0) -> None:
        log = (self._workdir / "moto.log").open("wb")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited: {(self._workdir / 'moto.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout_s} s")

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

"""A real single-node Apache Kafka (KRaft) broker for integration tests.

Runs the broker jars fetched by ``scripts/fetch-kafka.sh`` as a plain JVM
subprocess (no Docker), so tests exercise the real wire protocol, idempotence,
transactions and broker outages. The broker keeps its ports and data dir
across ``restart()``, which lets tests simulate an outage and a recovery.

``SecureKafkaBroker`` adds SSL, mutual-TLS and SASL (SCRAM) listeners next to the
PLAINTEXT one, for the Kafka security tests.

``start``/``stop``/``restart`` block; from async code call them with
``await asyncio.to_thread(broker.restart)`` so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import functools
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError, for_code  # type: ignore[import-untyped, unused-ignore]
from aiokafka.structs import ConsumerRecord, TopicPartition  # type: ignore[import-untyped, unused-ignore]

from .tls import TlsMaterial

REPO_ROOT = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO_ROOT / "scripts" / "fetch-kafka.sh"
LOG4J_CONFIG = REPO_ROOT / "scripts" / "kafka" / "log4j2.properties"
JVM_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]

T = TypeVar("T")


@functools.cache
def kafka_libs() -> Path:
    """Fetch (or reuse the cached) broker jars once per test process."""
    res = subprocess.run(["bash", str(FETCH_SCRIPT)], check=False, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"fetch-kafka.sh failed ({res.returncode}):\n{res.stderr}")
    return Path(res.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """Ask the OS for a currently unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a fresh thread and loop, so the sync
    broker API also works when called from inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class KafkaBroker:
    """One KRaft node (broker+controller) on 127.0.0.1, data under ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, controller_port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.data_dir = self.workdir / "data"
        self.log_file = self.workdir / "broker.log"
        self.config_file = self.workdir / "server.properties"
        self._proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.kill)  # never leak a JVM if the test run dies

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the JVM and block until the broker serves metadata requests."""
        if self.is_running():
            return
        libs = kafka_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(libs)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== starting broker {time.strftime('%X')} ===\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(self.config_file)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # keep the terminal's Ctrl-C away from it
            )
        self._wait_ready(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL after timeout_s."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no clean shutdown, as in a real outage."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def restart(self, timeout_s: float = 90.0) -> None:
        """Stop and start again on the same ports and data dir; data survives."""
        self.stop()
        self.start(timeout_s)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "<no broker log>"

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        # "libs/*" is a JVM classpath wildcard, expanded by java itself.
        return [
            "java",
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _write_config(self) -> None:
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in self._properties().items()))

    def _properties(self) -> dict[str, str]:
        """server.properties; a subclass adds listeners and security settings."""
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # fast first group join
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A restarted node cannot re-register until its previous broker
            # session expires (default 9 s); keep restarts quick but leave
            # room for GC pauses on a slow machine.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
        }

    def _format_options(self) -> list[str]:
        """Extra ``kafka-storage format`` arguments (e.g. ``--add-scram``); a subclass adds its own."""
        return []

    def _format_storage(self, libs: Path) -> None:
        """Write meta.properties once; a formatted data dir is never reformatted."""
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "--cluster-id=" form: a base64 id may start with "-", which argparse would take for an option.
        cmd = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.config_file),
            *self._format_options(),
        )
        res = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{res.stdout}{res.stderr}")

    def _wait_ready(self, timeout_s: float) -> None:
        """Poll until the broker is registered and answers metadata. The JVM
        start is slow on small machines, so fail only on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"kafka broker exited with code {code} during start-up; "
                    f"log tail ({self.log_file}):\n{self.log_tail()}"
                )
            if self._port_open() and _run_coro(_probe(self.bootstrap)):
                return
            time.sleep(0.5)
        self.kill()
        raise TimeoutError(
            f"kafka broker not ready after {timeout_s:.0f}s; log tail ({self.log_file}):\n{self.log_tail()}"
        )

    def _port_open(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1.0)
            return s.connect_ex(("127.0.0.1", self.port)) == 0


class SecureKafkaBroker(KafkaBroker):
    """A KafkaBroker with TLS and SASL/SCRAM listeners next to its PLAINTEXT one (kept for setup and
    read-back; the controller listener stays PLAINTEXT too). Listener names, all on 127.0.0.1:

    - ``SSL``: server authentication; a client certificate is requested (verified against the CA if sent);
    - ``MTLS``: SSL with ``ssl.client.auth=required``, so a connection without a valid client certificate fails;
    - ``SASL_PLAINTEXT`` and ``SASL_SSL``: SCRAM-SHA-256 and SCRAM-SHA-512.

    The broker reads its key and CA as PEM stores from ``tls`` (see tests/infra/tls.py). The SCRAM credentials
    of ``scram_users`` are written at format time (``kafka-storage format --add-scram``), for both mechanisms,
    so they exist before the broker first starts and survive a restart.
    """

    SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
    SECURE_LISTENERS = {"SSL": "SSL", "MTLS": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL"}
    SCRAM_USER = "ingester"

    def __init__(
        self,
        workdir: Path,
        tls: TlsMaterial,
        *,
        scram_users: dict[str, str] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
    ) -> None:
        super().__init__(workdir, port, controller_port)
        self.tls = tls
        self.scram_users = dict(scram_users or {self.SCRAM_USER: secrets.token_hex(16)})
        taken = {self.port, self.controller_port}
        self.listener_ports: dict[str, int] = {}
        for name in self.SECURE_LISTENERS:
            port_ = free_port()
            while port_ in taken:
                port_ = free_port()
            taken.add(port_)
            self.listener_ports[name] = port_

    def listener_bootstrap(self, listener: str) -> str:
        """Bootstrap address of one listener by name: PLAINTEXT, SSL, MTLS, SASL_PLAINTEXT or SASL_SSL."""
        return self.bootstrap if listener == "PLAINTEXT" else f"127.0.0.1:{self.listener_ports[listener]}"

    @property
    def ssl_bootstrap(self) -> str:
        return self.listener_bootstrap("SSL")

    @property
    def mtls_bootstrap(self) -> str:
        return self.listener_bootstrap("MTLS")

    @property
    def sasl_plaintext_bootstrap(self) -> str:
        return self.listener_bootstrap("SASL_PLAINTEXT")

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return self.listener_bootstrap("SASL_SSL")

    @property
    def scram_password(self) -> str:
        """The password of SCRAM_USER (the default user)."""
        return self.scram_users[self.SCRAM_USER]

    def _properties(self) -> dict[str, str]:
        props = super()._properties()
        listeners = {"PLAINTEXT": self.port, **self.listener_ports}
        advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
        protocols = {"PLAINTEXT": "PLAINTEXT", **self.SECURE_LISTENERS, "CONTROLLER": "PLAINTEXT"}
        props |= {
            "listeners": f"{advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": ",".join(f"{name}:{proto}" for name, proto in protocols.items()),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_cert),
            # Listener-prefixed: the broker-wide ssl.client.auth is only applied to SSL listeners, with a warning.
            "listener.name.ssl.ssl.client.auth": "requested",
            "listener.name.mtls.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": ",".join(self.SCRAM_MECHANISMS),
        }
        for listener, proto in self.SECURE_LISTENERS.items():
            if proto.startswith("SASL"):
                for mechanism in self.SCRAM_MECHANISMS:
                    key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
                    props[key] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return props

    def _format_options(self) -> list[str]:
        options = super()._format_options()
        for user, password in self.scram_users.items():
            for mechanism in self.SCRAM_MECHANISMS:
                options += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return options

    def _wait_ready(self, timeout_s: float) -> None:
        """Ready on PLAINTEXT (metadata answered), then every secure listener accepts connections."""
        deadline = time.monotonic() + timeout_s
        super()._wait_ready(timeout_s)
        closed = dict(self.listener_ports)
        while closed:
            closed = {name: port for name, port in closed.items() if not _port_open(port)}
            if not closed:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"secure kafka listeners {sorted(closed)} not open after {timeout_s:.0f}s; "
                    f"log tail ({self.log_file}):\n{self.log_tail()}"
                )
            time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _probe(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


async def _wait_for_leaders(bootstrap: str, topic: str, timeout_s: float, partitions: int | None = None) -> list[int]:
    """Poll metadata until the topic exists (with ``partitions`` partitions if
    given) and every partition has a leader; return the partition ids."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout_s
    try:
        await admin.start()
        while True:
            meta: list[dict[str, Any]] = await admin.describe_topics([topic])
            parts = meta[0]["partitions"] if meta and meta[0]["error_code"] == 0 else []
            ok = parts and partitions in (None, len(parts))
            if ok and all(p["leader"] >= 0 for p in parts):
                return sorted(p["partition"] for p in parts)
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} missing or without leaders")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def create_topic(bootstrap: str, name: str, partitions: int = 4, config: dict[str, str] | None = None) -> None:
    """Create a topic and wait until every partition has a leader, so the
    first produce does not race the topic's creation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        resp = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config or {})])
        for _topic, code, *msg in resp.topic_errors:
            if code != 0:
                raise for_code(code)(f"create_topic {name!r}: {msg}")
    finally:
        await admin.close()
    await _wait_for_leaders(bootstrap, name, 10.0, partitions)


async def read_all(
    bootstrap: str,
    topic: str,
    timeout_s: float = 30.0,
    isolation_level: str = "read_committed",
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning up to its current end offsets (no
    consumer group, nothing committed). read_committed ends at the last stable
    offset, so aborted or open transactions are excluded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    deadline = time.monotonic() + timeout_s
    tps = [TopicPartition(topic, p) for p in await _wait_for_leaders(bootstrap, topic, timeout_s)]
    records: list[ConsumerRecord[bytes, bytes]] = []
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"read_all({topic!r}) timed out; got {len(records)} records, "
                    f"partitions not at end: {sorted(tp.partition for tp in pending)}"
                )
            batch = await consumer.getmany(*pending, timeout_ms=int(min(remaining, 1) * 1000))
            for recs in batch.values():
                records.extend(recs)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))

"""Check that a rendered chart is a configuration ingester itself accepts, wired the way the chart promises.

Run by scripts/deploy-check.sh with the project's virtualenv: `check_rendered_config.py rendered.yaml [...]`.

The ConfigMap's config.toml plus the StatefulSet's INGESTER_* environment (secrets and the pod name stood in for)
go through ingester.config.load, the function `ingester run` uses: a key ingester does not know, a float where an
integer belongs, or an invalid choice fails here instead of in a crash-looping pod. Then the wiring:
terminationGracePeriodSeconds = drain_timeout_seconds + 15, the probes and the Service on metrics_port (one
port for every worker process; collection.workers set from the pod's CPU, not one per core of the node), a
read-only root filesystem with the checkpoint on a writable volume, the TLS files where the config says, the
SASL credentials and the exactly-once transactional id from the environment.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ingester.config import Settings, load


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def pod_environment(statefulset: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", item
            environ[item["name"]] = f"{statefulset['metadata']['name']}-0"
        elif "secretKeyRef" in source:
            environ[item["name"]] = f"<{source['secretKeyRef']['name']}/{source['secretKeyRef']['key']}>"
        else:
            environ[item["name"]] = str(item.get("value", ""))
    return environ


def mounted_file(spec: dict[str, Any], container: dict[str, Any], path: str) -> bool:
    """Is ``path`` a file the pod's volumes provide (a ConfigMap/Secret item of a mounted volume)?"""
    target = PurePosixPath(path)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        base = PurePosixPath(mount["mountPath"])
        if base not in target.parents:
            continue
        relative = str(target.relative_to(base))
        volume = volumes.get(mount["name"], {})
        sources = volume.get("projected", {}).get("sources", []) or [volume]
        for source in sources:
            for kind in ("secret", "configMap"):
                if any(item["path"] == relative for item in source.get(kind, {}).get("items", [])):
                    return True
    return False


def writable_dir(spec: dict[str, Any], container: dict[str, Any], path: str) -> bool:
    target = PurePosixPath(path)
    claims = {"state"}  # volumeClaimTemplates, when persistence is on
    writable = claims | {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
    return any(
        PurePosixPath(mount["mountPath"]) in target.parents and mount["name"] in writable and not mount.get("readOnly")
        for mount in container.get("volumeMounts", [])
    )


def check(path: Path) -> list[str]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    (configmap,) = by_kind(docs, "ConfigMap")
    (statefulset,) = by_kind(docs, "StatefulSet")
    spec = statefulset["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    environ = pod_environment(statefulset, container)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.toml"
        config_file.write_text(configmap["data"]["config.toml"], encoding="utf-8")
        settings: Settings = load(config_file, environ)
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    grace = spec.get("terminationGracePeriodSeconds")
    expect(
        grace == settings.collection.drain_timeout_seconds + 15,
        f"terminationGracePeriodSeconds {grace} != drain_timeout_seconds "
        f"{settings.collection.drain_timeout_seconds} + 15",
    )
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    expect(ports.get("metrics") == settings.telemetry.metrics_port > 0, f"metrics port {ports} vs config")
    for probe, endpoint in (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        expect(get.get("path") == endpoint and get.get("port") == "metrics", f"{probe}: {get}")
    (service,) = by_kind(docs, "Service")
    expect(
        [p["port"] for p in service["spec"]["ports"]] == [settings.telemetry.metrics_port],
        "Service port != metrics_port",
    )
    cpu = {**container.get("resources", {}).get("requests", {}), **container.get("resources", {}).get("limits", {})}
    expect(
        "cpu" not in cpu or settings.collection.workers > 0,
        "collection.workers 0 with a CPU limit or request: one process per core of the node",
    )
    context = container.get("securityContext", {})
    expect(context.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    expect(context.get("capabilities", {}).get("drop") == ["ALL"], "capabilities not dropped")
    expect(spec.get("securityContext", {}).get("runAsNonRoot") is True, "runAsNonRoot is not true")
    if settings.kafka.delivery == "at_least_once" or settings.sink.type == "file":
        expect(writable_dir(spec, container, settings.checkpoint.path), "checkpoint.path is not on a writable volume")
    if settings.sink.type == "file":
        expect(writable_dir(spec, container, settings.sink.file.path), "sink.file.path is not on a writable volume")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings.kafka, name)
        expect(not value or mounted_file(spec, container, value), f"kafka.{name} {value} is not mounted")
    kafka = settings.kafka
    if kafka.security_protocol.startswith("SASL") and kafka.sasl_mechanism != "OAUTHBEARER":
        expect(bool(kafka.sasl_username and kafka.sasl_password), "SASL credentials missing from the environment")
    if kafka.delivery == "exactly_once":
        expect(
            kafka.transactional_id == f"{statefulset['metadata']['name']}-0",
            f"transactional_id {kafka.transactional_id!r} is not the pod name",
        )
    print(
        f"  {path.name}: config accepted by ingester.config.load (mode {settings.discovery.mode}, "
        f"sink {settings.sink.type}/{settings.sink.format}, {kafka.delivery}, {kafka.security_protocol}"
        f"{'/' + kafka.sasl_mechanism if kafka.security_protocol.startswith('SASL') else ''}), "
        f"grace {grace}s, probes on :{settings.telemetry.metrics_port}, {settings.collection.workers} worker(s)"
        + ("" if not problems else f"; {len(problems)} problem(s)")
    )
    return problems


def main() -> int:
    failed = 0
    for name in sys.argv[1:]:
        try:
            problems = check(Path(name))
        except Exception as exc:  # a config ingester rejects: report it like any other problem
            problems = [f"{type(exc).__name__}: {exc}"]
        for problem in problems:
            print(f"  INVALID {Path(name).name}: {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The deployment recipe (deploy/compose.yaml, deploy/kubernetes/warden.yaml) checked against
Warden itself: every WARDEN_* variable is a setting and its value validates, every command
and option exists in the CLI, every port a process listens on is the one published, probed
and scraped, and the URLs name the services that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer.main
import yaml

from warden.cli.main import app
from warden.config import Settings, load_settings

ROOT = Path(__file__).parent.parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes" / "warden.yaml"
CLI = typer.main.get_command(app)
LISTEN = {"serve": ("api_port", "api_metrics_port"), "gateway": ("gateway_port",)}


def option_value(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def check_command(args: list[str]) -> Any:
    """The Warden command ``args`` runs, every option of which it has."""
    command = CLI.commands.get(args[0])  # type: ignore[attr-defined]
    assert command is not None, f"warden has no command {args[0]!r}"
    known = {o for p in command.params for o in getattr(p, "opts", [])}
    for arg in args[1:]:
        if arg.startswith("--"):
            assert arg in known, f"warden {args[0]} has no option {arg}"
    return command


def check_environment(env: dict[str, str], tmp_path: Path, monkeypatch: Any) -> Settings:
    """Every WARDEN_* name is a setting, and together they load."""
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith("WARDEN_"), name
        assert name[len("WARDEN_") :].lower() in fields, f"{name} is not a Warden setting"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WARDEN_STATE_DIR", str(tmp_path))  # the path itself is the container's
    return load_settings()


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_services_are_warden_commands_with_real_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "control-plane", "gateway-1", "gateway-2"} <= set(services)
    names = set()
    plane_names: list[str] = []
    gateways_reach: set[str] = set()
    for service in services.values():
        if service.get("image") != "warden:0.1.0":
            continue
        args = service["command"]
        check_command(args)
        env = {k: str(v) for k, v in service["environment"].items()}
        with monkeypatch.context() as patch:
            settings = check_environment(env, tmp_path, patch)
        assert urlparse(settings.database_url or "").hostname in services  # postgres
        assert urlparse(settings.redis_url).hostname in services  # redis
        published = {int(p.split(":")[1]) for p in service.get("ports", [])}
        if args[0] == "serve":
            listening = {int(option_value(args, "--port") or 0), settings.api_metrics_port}
            assert listening == published
            plane_names = settings.server_names
        if args[0] == "gateway":
            listening = {int(option_value(args, "--port") or 0), settings.gateway_metrics_port}
            assert listening == published
            names.add(settings.gateway_name)
            plane = urlparse(settings.control_plane_url)
            assert plane.hostname == "control-plane" and plane.port == 8443
            gateways_reach.add(plane.hostname or "")
            assert option_value(args, "--routes") in {
                v.split(":")[1] for v in service["volumes"]
            }, "the route file is mounted where the gateway reads it"
    assert len(names) == 2, "each gateway has a name (and an SVID) of its own"
    assert gateways_reach <= set(plane_names), "the control plane's certificate names it so"
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "no host port published twice"


def test_compose_mounts_files_that_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).resolve().is_file(), source


def kubernetes() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]


def test_kubernetes_deployments_probe_and_serve_what_warden_listens_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = kubernetes()
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    services = [d for d in documents if d["kind"] == "Service"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "warden-control-plane",
        "warden-gateway",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        (container,) = pod["spec"]["containers"]
        args = container["args"]
        check_command(args)
        env = {e["name"]: e.get("value", "placeholder") for e in container["env"]}
        env["WARDEN_DATABASE_URL"] = "postgresql+psycopg://warden@postgres/warden"
        env["WARDEN_REDIS_URL"] = "redis://redis:6379/0"
        with monkeypatch.context() as patch:
            settings = check_environment(env, tmp_path, patch)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if args[0] == "serve":
            assert "warden-control-plane" in settings.server_names
        main_port = int(option_value(args, "--port") or 0)
        metrics_port = (
            settings.api_metrics_port if args[0] == "serve" else settings.gateway_metrics_port
        )
        assert metrics_port and ports["metrics"] == metrics_port
        assert main_port in ports.values()
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(settings.state_dir) != "" and "/var/lib/warden" in mounts
        routes = option_value(args, "--routes")
        if routes is not None:
            assert str(Path(routes).parent) in mounts
        for service in services:
            if service["spec"]["selector"] == labels:
                for port in service["spec"]["ports"]:
                    assert port["targetPort"] in ports, "a Service targets a named port"
    gateway = next(d for d in deployments if d["metadata"]["name"] == "warden-gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    plane = next(e for e in container["env"] if e["name"] == "WARDEN_CONTROL_PLANE_URL")
    assert urlparse(plane["value"]).hostname in {s["metadata"]["name"] for s in services}
    assert urlparse(plane["value"]).port == 8443
    name = next(e for e in container["env"] if e["name"] == "WARDEN_GATEWAY_NAME")
    assert name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # one SVID per pod

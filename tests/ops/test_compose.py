"""docker-compose.yml, the Dockerfile and the provisioning files agree with each other and
with server/settings.py. Docker cannot run here, so these checks are what can be tested:
the file parses, every file it mounts or copies exists, and the ports, hosts and variable
names line up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from ops_queries import ROOT

from server.settings import Settings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


class RecordingEnvironment(dict[str, str]):
    """An environment that remembers which variables Settings.from_env asks for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def _exchange_environment() -> dict[str, str]:
    return {name: str(value) for name, value in SERVICES["exchange"]["environment"].items()}


def _settings() -> tuple[Settings, set[str]]:
    environment = RecordingEnvironment(_exchange_environment())
    return Settings.from_env(environment), environment.asked


def _container_ports(service: str) -> set[int]:
    mappings = SERVICES[service]["ports"]
    return {int(str(mapping).split(":")[-1].split("/")[0]) for mapping in mappings}


def _bind_mounts(service: str) -> list[tuple[Path, str]]:
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            mounts.append(((ROOT / source).resolve(), target))
    return mounts


def _host_path(service: str, container_path: str) -> Path:
    """The repository file that `container_path` is inside `service` (via a bind mount)."""
    for source, target in _bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not bind-mounted into {service}")


def test_compose_has_the_full_stack() -> None:
    assert {"kurrentdb", "postgres", "redis", "exchange", "prometheus", "grafana", "jaeger"} <= set(
        SERVICES
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_file_exists(service: str) -> None:
    for source, _target in _bind_mounts(service):
        assert source.exists(), f"{service} mounts missing {source}"


def test_the_service_is_built_from_the_dockerfile() -> None:
    build = SERVICES["exchange"]["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    assert (context / "Dockerfile").is_file()


def test_every_dockerfile_copy_source_exists() -> None:
    copies = re.findall(r"^COPY\s+(.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert copies
    for line in copies:
        if line.startswith("--from="):
            continue  # from an earlier build stage (the compiled engine), not the context
        *sources, _destination = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_the_dockerfile_exposes_the_default_ports() -> None:
    exposed = {int(port) for port in re.findall(r"^EXPOSE\s+(.+)$", DOCKERFILE, re.M)[0].split()}
    defaults = Settings()
    assert {defaults.grpc_port, defaults.http_port, defaults.metrics_port} <= exposed


def test_every_service_variable_is_one_the_service_reads() -> None:
    _settings_read, asked = _settings()
    # OTEL_* variables are read by the OpenTelemetry SDK (server/observability/tracing.py).
    unknown = {
        name
        for name in _exchange_environment()
        if name not in asked and not name.startswith("OTEL_")
    }
    assert unknown == set()


def test_service_ports_match_its_settings() -> None:
    settings, _asked = _settings()
    assert {settings.grpc_port, settings.http_port, settings.metrics_port} <= _container_ports(
        "exchange"
    )


def test_prometheus_scrapes_the_service_metrics_port() -> None:
    settings, _asked = _settings()
    config_flag = next(
        flag for flag in SERVICES["prometheus"]["command"] if flag.startswith("--config.file=")
    )
    config_path = _host_path("prometheus", config_flag.split("=", 1)[1])
    config = yaml.safe_load(config_path.read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "exchange")
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets == [f"exchange:{settings.metrics_port}"]
    for rule_file in config["rule_files"]:
        assert (config_path.parent / rule_file).is_file()


@pytest.mark.parametrize(
    ("variable", "service", "scheme"),
    [
        ("DATABASE_URL", "postgres", "postgresql"),
        ("REDIS_URL", "redis", "redis"),
        ("EVENT_STORE_URL", "kurrentdb", "kurrentdb"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger", "http"),
    ],
)
def test_service_urls_point_at_compose_services(variable: str, service: str, scheme: str) -> None:
    url = urlsplit(_exchange_environment()[variable])
    assert url.scheme == scheme
    assert url.hostname == service
    assert url.port in _container_ports(service)
    assert service in SERVICES["exchange"]["depends_on"]


def test_database_credentials_match_postgres() -> None:
    url = urlsplit(_exchange_environment()["DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert (url.username, url.password, url.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_grafana_provisioning_matches_the_mounts() -> None:
    datasources = yaml.safe_load(
        _host_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    prometheus_url = urlsplit(datasources[0]["url"])
    assert prometheus_url.hostname == "prometheus"
    assert prometheus_url.port in _container_ports("prometheus")

    providers = yaml.safe_load(
        _host_path("grafana", "/etc/grafana/provisioning/dashboards/exchange.yml").read_text()
    )["providers"]
    dashboards_dir = _host_path("grafana", providers[0]["options"]["path"])
    assert sorted(dashboards_dir.glob("*.json"))
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path("grafana", home).is_file()

"""deploy/: the Prometheus alerts, the Grafana dashboard, the Helm chart, the compose file and the
Dockerfile name only metrics a running gateway serves, values the chart defines, files that exist
and configurations tenantgate accepts. (No image is built here: the machine reaches no container
registry; what is checked is what can be without one.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tenantgate.settings import Settings
from tests.e2e.procs import ADMIN_TOKEN, Gateway

DEPLOY = Path(__file__).parents[2] / "deploy"
METRIC = re.compile(r"\b((?:tenantgate|process)_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


@pytest.fixture(scope="module")
def served(gw: Gateway, acme_key: str) -> set[str]:
    """Every metric name the gateway's /metrics serves, after some traffic."""
    headers = {"Authorization": f"Bearer {acme_key}"}
    chat = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    assert httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers, timeout=30).status_code == 200
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json={**chat, "stream": True}, headers=headers, timeout=30
    ) as stream:
        assert stream.status_code == 200
        assert "data: [DONE]" in list(stream.iter_lines())
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def named_metrics(text: str) -> set[str]:
    return set(METRIC.findall(text))


def test_every_alert_is_well_formed_and_names_served_metrics(served: set[str]) -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} >= {
        "TenantgateDeploymentSaturated", "TenantgateQueueTimeouts", "TenantgateServerErrors",
        "TenantgateTTFTSLOBreach", "TenantgateUsageWriterLag",
    }  # fmt: skip
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"} and rule["annotations"]["summary"]
        names = named_metrics(rule["expr"])
        assert names, rule["alert"]
        assert names <= served, f"{rule['alert']} names {names - served}, which /metrics does not serve"


def test_every_dashboard_panel_names_served_metrics(served: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tenantgate-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [variable["query"] for variable in dashboard["templating"]["list"]]
    assert len(dashboard["panels"]) >= 10
    for expression in expressions:
        names = named_metrics(expression)
        assert names and names <= served, f"{expression!r} names {names - served}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _values_paths(template: str) -> set[str]:
    return set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template))


def _lookup(values: dict[str, Any], path: str) -> object:
    node: object = values
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"values.yaml has no {path}"
        node = node[part]
    return node


def test_the_helm_chart_uses_only_values_it_defines_and_its_config_is_valid(served: set[str], tmp_path: Path) -> None:
    chart = DEPLOY / "helm" / "tenantgate"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["name"] == "tenantgate"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    templates = {path.name: path.read_text() for path in (chart / "templates").iterdir()}
    for name, template in templates.items():
        for path in _values_paths(template):
            _lookup(values, path)
        assert template.count("{{") == template.count("}}"), name
    assert named_metrics(templates["scaledobject.yaml"]) == {"tenantgate_pool_desired_deployments"} <= served
    config = tmp_path / "tenantgate.yaml"
    config.write_text(yaml.safe_dump(values["config"]))
    assert [pool.name for pool in Settings(config=config).catalog.pools] == ["gpu"]


def test_the_compose_installation_is_complete_and_its_config_is_valid() -> None:
    compose_dir = DEPLOY / "compose"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert {"gateway-1", "gateway-2", "engine-a", "engine-b", "postgres", "redis"} <= set(services)
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["command"][0] == "serve" and set(gateway["depends_on"]) <= set(services)
        environment = gateway["environment"]
        assert "@postgres:" in environment["TENANTGATE_DATABASE_URL"]
        assert environment["TENANTGATE_REDIS_URL"].startswith("redis://redis:")
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).resolve().is_file(), source
    settings = Settings(config=compose_dir / "tenantgate.yaml")
    hosts = {re.sub(r"^http://([^:/]+).*", r"\1", d.base_url) for p in settings.catalog.pools for d in p.deployments}
    assert hosts == {"engine-a", "engine-b"} <= set(services)
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yaml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert {target.split(":")[0] for target in targets} == {"gateway-1", "gateway-2"}


def test_the_dockerfile_copies_what_exists_and_runs_the_gateway() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    root = DEPLOY.parent
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), source
    assert 'ENTRYPOINT ["tenantgate"]' in lines and 'CMD ["serve"]' in lines
    assert any("/healthz" in line for line in lines) and "USER tenantgate" in lines

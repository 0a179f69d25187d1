"""deploy/prometheus/alerts.yml: promtool accepts and unit-tests it, every alert is well-formed, tested
both ways, uses only exported metrics, and takes its thresholds from the service's exported config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from balancer.metrics.args import CollectionArgs
from balancer.policy.args import ThresholdArgs
from tests.observability.conftest import ALERTS, ALERTS_TEST, DOCS, ROOT
from tests.observability.inventory import Inventory
from tests.prom import promtool

SEVERITIES = {"critical", "warning", "info"}


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader, the C one when built


RULES: dict[str, dict[str, Any]] = {
    r["alert"]: r for g in _load(ALERTS)["groups"] for r in g["rules"] if "alert" in r
}
CASES: list[dict[str, Any]] = [c for t in _load(ALERTS_TEST)["tests"] for c in t.get("alert_rule_test", [])]


def test_promtool_check_rules() -> None:
    res = promtool("check", "rules", ALERTS)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in res.stdout


def test_promtool_unit_tests_pass() -> None:
    res = promtool("test", "rules", ALERTS_TEST)
    assert res.returncode == 0, res.stdout + res.stderr


def test_example_prometheus_config_loads_the_rules() -> None:
    res = promtool("check", "config", ROOT / "deploy" / "prometheus" / "prometheus.example.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "alerts.yml" in res.stdout


@pytest.mark.parametrize("name", sorted(RULES))
def test_alert_has_severity_summary_description_and_runbook(name: str) -> None:
    rule = RULES[name]
    assert rule["labels"]["severity"] in SEVERITIES
    ann = rule["annotations"]
    assert ann["summary"].strip() and ann["description"].strip()
    anchor = ann["runbook_url"].split("#", 1)
    assert anchor[0] == "docs/observability.md" and anchor[1] == name.lower()
    assert f"### {name}" in DOCS.read_text(), f"docs/observability.md has no section for {name}"


@pytest.mark.parametrize("name", sorted(RULES))
def test_alert_is_unit_tested_firing_and_not_firing(name: str) -> None:
    cases = [c for c in CASES if c["alertname"] == name]
    assert any(c.get("exp_alerts") for c in cases), f"{name}: no promtool case where it fires"
    assert any(not c.get("exp_alerts") for c in cases), f"{name}: no promtool case where it stays quiet"


#: Alerts whose firing series (in the promtool cases) carry a host label.
HOST_ALERTS = sorted(
    {c["alertname"] for c in CASES for a in c.get("exp_alerts") or [] if "host" in a["exp_labels"]}
)


def test_host_alerts_are_found() -> None:
    expected = {"BalancerHostOverloaded", "BalancerDrainBlocked", "BalancerHostCollectionFailing"}
    assert expected <= set(HOST_ALERTS)


@pytest.mark.parametrize("name", HOST_ALERTS)
def test_host_alerts_name_the_host(name: str) -> None:
    """An alert about one host says which in its summary and description."""
    ann = RULES[name]["annotations"]
    assert "$labels.host" in ann["summary"] and "$labels.host" in ann["description"]


@pytest.mark.parametrize("name", sorted(RULES))
def test_alert_uses_only_exported_metrics(name: str, inventory: Inventory) -> None:
    assert inventory.problems(RULES[name]["expr"]) == []


def test_thresholds_come_from_the_service_not_from_copies_of_config_defaults() -> None:
    """The rules compare with the config values the service exports (balancer_config_*), so a changed
    config.yaml changes the alerts too; none of its defaults is copied into a rule."""
    assert "balancer_config_high_water_ratio" in RULES["BalancerHostOverloaded"]["expr"]
    assert "balancer_config_target_imbalance" in RULES["BalancerImbalanceStuck"]["expr"]
    assert "balancer_config_collection_interval_seconds" in RULES["BalancerNoSuccessfulTick"]["expr"]
    t, c = ThresholdArgs(), CollectionArgs()
    copies = {t.cpu_high, t.memory_high, t.target_imbalance, 3 * c.interval_seconds, c.interval_seconds}
    for name, rule in RULES.items():
        expr = re.sub(r'"[^"]*"|\[[^]]*\]', "", rule["expr"])  # label values and range durations
        numbers = {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", expr)}
        assert not numbers & copies, f"{name} copies a config default: {sorted(numbers & copies)}"

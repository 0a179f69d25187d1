"""The alert rules in a real Prometheus, scraping a real /metrics: quiet on a healthy cluster, firing on
induced faults.

The rules' ``for:`` durations are minutes; the test loads a copy of alerts.yml with every ``for:``
rewritten to 2 s (and Prometheus evaluating every second), so "the condition held for the whole ``for``"
happens within the test. The expressions themselves are unchanged. promtool's unit tests
(alerts_test.yml) cover the real durations.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.observability import sample_cluster
from tests.observability.conftest import ALERTS, serve
from tests.prom import Prometheus, run_prometheus

SHORT_FOR = "2s"


def shortened_rules(src: Path, dst: Path, duration: str = SHORT_FOR) -> Path:
    """A copy of the rule file ``src`` with every ``for:`` set to ``duration``."""
    doc = yaml.safe_load(src.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = duration
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def _assert_rules_healthy(prom: Prometheus) -> None:
    rules = [r for g in prom.rules() for r in g["rules"]]
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert broken == [], f"rules that failed to evaluate: {broken}"


def _firing_names(prom: Prometheus) -> set[str]:
    return {a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"}


@pytest.mark.slow
def test_alerts_stay_quiet_when_healthy_and_fire_on_faults(tmp_path: Path) -> None:
    now = time.time()
    metrics = sample_cluster.new_metrics()
    sample_cluster.populate(metrics, now, busy=False)
    rules = shortened_rules(ALERTS, tmp_path / "alerts-short-for.yml")

    with serve(metrics) as target, run_prometheus([target], [rules], tmp_path / "prom") as prom:
        prom.wait_for_scrapes(count=2)
        # Healthy: after more than SHORT_FOR of evaluations on scraped data nothing is pending or firing.
        prom.wait_for_rule_evaluation(after=time.time() + 2.5)
        assert prom.alerts() == []
        _assert_rules_healthy(prom)

        # Faults: a host stops answering, compute-1 runs hot, the drain is blocked and past its
        # deadline, and ticks stopped succeeding ten minutes ago.
        metrics.state.update(
            snapshot=sample_cluster.snapshot(now, down="compute-2"),
            load={**sample_cluster.load(busy=False), "compute-1": {"cpu": 0.93, "memory": 0.69}},
            drains={sample_cluster.DRAINING: sample_cluster.drain(now, False, blocked=2, deadline=now - 120)},
        )
        metrics.control.ticked(time.monotonic() - 600)
        expected = {
            "BalancerHostCollectionFailing": {"host": "compute-2"},
            "BalancerHostOverloaded": {"host": "compute-1", "resource": "cpu"},
            "BalancerDrainBlocked": {"host": "compute-3"},
            "BalancerDrainPastDeadline": {"host": "compute-3"},
            "BalancerNoSuccessfulTick": {},
        }
        for name, labels in expected.items():
            firing = prom.wait_for_alert(name, timeout=20)
            assert [a for a in firing if labels.items() <= a["labels"].items()], (name, firing)
            alert = firing[0]
            assert alert["labels"]["severity"] in {"critical", "warning", "info"}
            if "host" in labels:
                assert labels["host"] in alert["annotations"]["summary"]
                assert labels["host"] in alert["annotations"]["description"]
        assert _firing_names(prom) == set(expected)
        _assert_rules_healthy(prom)

        # The drain stops although one of its VMs could move: ten ticks later BalancerDrainStalled fires.
        still = sample_cluster.drain(now, False, blocked=1, deadline=now - 120)
        for _ in range(10):
            metrics.state.update(drains={sample_cluster.DRAINING: still})
        (stalled,) = prom.wait_for_alert("BalancerDrainStalled", timeout=20)
        assert stalled["labels"]["host"] == sample_cluster.DRAINING

        # The lease is lost: BalancerNoLeader fires, and the state alerts (judged on the leader) resolve.
        metrics.state.update(leader=False)
        prom.wait_for_alert("BalancerNoLeader", timeout=20)
        prom.wait_for("ALERTS{alertname='BalancerDrainBlocked'}", lambda r: r == [], timeout=20)

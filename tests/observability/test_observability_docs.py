"""docs/observability.md describes every exported metric (with its type and labels) and every alert."""

from __future__ import annotations

import re

import yaml

from tests.observability.conftest import ALERTS, DOCS
from tests.observability.inventory import Inventory

_ROW = re.compile(r"^\| `((?:balancer|process|python)_\w+)` \| (\w+) \| ([^|]*) \|", re.MULTILINE)


def test_every_metric_is_documented_with_its_type_and_labels(inventory: Inventory) -> None:
    table = _ROW.findall(DOCS.read_text())
    rows = {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in table}
    for fam in inventory.families.values():
        assert fam.exposed_name in rows, f"{fam.exposed_name} is not in the metric tables of {DOCS.name}"
        kind, labels = rows[fam.exposed_name]
        assert (kind, labels) == (fam.type, set(fam.labels)), fam.exposed_name
    exported = {f.exposed_name for f in inventory.families.values()}
    assert set(rows) <= exported, f"documented but not exported: {set(rows) - exported}"


def test_every_alert_is_in_the_summary_table_and_has_a_section() -> None:
    text = DOCS.read_text()
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            assert re.search(rf"^\| {name} \| {rule['labels']['severity']} \|", text, re.MULTILINE), name
            assert f"### {name}\n" in text, name

"""deploy/grafana/balancer.json and its provisioning: valid against Grafana's schema, laid out on the grid,
every query uses exported metrics and variables that exist, parses in a real Prometheus and returns data."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
from typing import Any

import pytest
import yaml

from tests.observability.conftest import DASHBOARD, ROOT, ScrapedCluster
from tests.observability.inventory import Inventory, used_series

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "state-timeline", "heatmap", "bargauge", "table"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
#: What the Grafana variables become when a query is sent to Prometheus directly.
SUBSTITUTES = {"host": ".*", "__rate_interval": "10s", "__interval": "1s", "__range": "1m"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")

BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text())
PANELS = [p for p in BOARD["panels"] if p["type"] != "row"]
TARGETS = [(p, t) for p in PANELS for t in p["targets"]]
TARGET_IDS = [f"{p['id']}:{p['title']}:{t['refId']}" for p, t in TARGETS]


def substitute(expr: str) -> str:
    return _VARIABLE.sub(lambda m: SUBSTITUTES.get(m.group(1), m.group(0)), expr)


def variable(name: str) -> dict[str, Any]:
    return next(v for v in BOARD["templating"]["list"] if v["name"] == name)


# --------------------------------------------------------------------------- structure
def test_dashboard_header() -> None:
    assert isinstance(BOARD["schemaVersion"], int) and 36 <= BOARD["schemaVersion"] <= 41
    assert BOARD["uid"] == "balancer-overview" and BOARD["title"]
    assert BOARD["time"]["from"].startswith("now-")


def test_panels_have_unique_ids_and_tile_the_grid_without_overlap() -> None:
    ids = [p["id"] for p in BOARD["panels"]]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for p in BOARD["panels"]:
        pos = p["gridPos"]
        assert all(isinstance(pos[k], int) for k in "xywh"), p["title"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] >= 1 and pos["h"] >= 1, p["title"]
        assert pos["x"] + pos["w"] <= 24, f"{p['title']} sticks out of the 24-column grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{p['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = p["title"]


def test_rows_are_open_and_panels_are_known_types() -> None:
    for p in BOARD["panels"]:
        if p["type"] == "row":
            assert p["collapsed"] is False and p["panels"] == [] and p["gridPos"]["w"] == 24
        else:
            assert p["type"] in PANEL_TYPES and p["title"].strip() and p.get("description", "").strip()


def test_every_query_goes_to_the_datasource_variable() -> None:
    for p in PANELS:
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]


def test_variables_datasource_and_host() -> None:
    ds = variable("datasource")
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    host = variable("host")
    assert host["type"] == "query" and host["datasource"] == DATASOURCE
    assert host["includeAll"] and host["multi"] and host["allValue"] == ".*"
    assert re.fullmatch(r"label_values\(balancer_host_load_ratio, host\)", host["query"]["query"])


def test_queries_use_only_defined_variables() -> None:
    defined = {v["name"] for v in BOARD["templating"]["list"]} | GRAFANA_VARIABLES
    for p, t in TARGETS:
        used = set(_VARIABLE.findall(t["expr"]))
        assert used <= defined, f"{p['title']}: undefined {used - defined}"


@pytest.mark.parametrize(("panel", "target"), TARGETS, ids=TARGET_IDS)
def test_query_uses_exported_metrics_and_labels(panel: dict, target: dict, inventory: Inventory) -> None:
    assert inventory.problems(target["expr"]) == []


@pytest.mark.parametrize(("panel", "target"), TARGETS, ids=TARGET_IDS)
def test_per_host_queries_follow_the_host_variable(panel: dict, target: dict, inventory: Inventory) -> None:
    """Every selector of a metric with a host label filters on ``host=~"$host"``."""
    series = inventory.series()
    for name in used_series(target["expr"]):
        if "host" not in series.get(name, ()) or name == "up":
            continue
        for match in re.finditer(rf"\b{name}\b(\s*\{{[^}}]*\}})?", target["expr"]):
            assert 'host=~"$host"' in (match.group(1) or ""), f"{name} without the host filter"


def test_dashboard_shows_what_the_issue_asks_for(inventory: Inventory) -> None:
    used = {n for _, t in TARGETS for n in used_series(t["expr"])}
    missing = [f.exposed_name for f in inventory.families.values() if not f.series_names & used]
    assert missing == [], f"exported but on no panel: {missing}"
    per_host_load = [
        t
        for p in PANELS
        if p["type"] in {"state-timeline", "heatmap"}
        for t in p["targets"]
        if "balancer_host_load_ratio" in t["expr"] and t["legendFormat"] == "{{host}}"
    ]
    assert per_host_load, "no per-host load heatmap / state timeline"
    finished = [t["expr"] for _, t in TARGETS if "balancer_migrations_finished_total" in t["expr"]]
    assert any("by (result)" in e for e in finished), "no migrations finished by result"


# --------------------------------------------------------------------------- Grafana's schema
#: The SDK build whose types are Grafana 11.6's; its version epochs make a bare install pick Grafana 10.1.
SDK_PIN = "grafana-foundation-sdk==1769699379!11.6.0"


def _grafana_schema() -> Any:
    pytest.importorskip("grafana_foundation_sdk", reason=f"not installed: {SDK_PIN}")
    grafana = importlib.metadata.version("grafana-foundation-sdk").partition("!")[2]
    if grafana and tuple(int(x) for x in grafana.split(".")[:2]) < (11, 6):
        pytest.fail(f"grafana-foundation-sdk has Grafana {grafana}'s types, the dashboard 11.6's: {SDK_PIN}")
    from tests.observability import grafana_schema

    return grafana_schema


def test_dashboard_matches_grafana_schema() -> None:
    assert _grafana_schema().problems(BOARD) == []


def test_schema_check_catches_mistakes() -> None:
    grafana_schema = _grafana_schema()
    ts = next(i for i, p in enumerate(BOARD["panels"]) if p["type"] == "timeseries")
    stat = next(i for i, p in enumerate(BOARD["panels"]) if p["type"] == "stat")

    def broken(change: Any) -> list[str]:
        board = copy.deepcopy(BOARD)
        change(board)
        return grafana_schema.problems(board)

    assert broken(lambda b: b["panels"][ts].__setitem__("gridpos", b["panels"][ts].pop("gridPos")))
    assert broken(lambda b: b["panels"][ts]["fieldConfig"]["defaults"]["custom"].update(drawStyle="lines"))
    assert broken(lambda b: b["panels"][ts]["gridPos"].update(w="8"))
    assert broken(lambda b: b["panels"][stat]["options"].update(colorMode="rainbow"))
    assert broken(lambda b: b["panels"][ts]["targets"][0].update(legendformat="{{host}}"))
    assert broken(lambda b: b.update(graphTooltip=7))


# --------------------------------------------------------------------------- provisioning
def test_provisioning_examples() -> None:
    dashboards = yaml.safe_load((PROVISIONING / "dashboards" / "balancer.yaml").read_text())
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (ds,) = datasources["datasources"]
    assert ds["type"] == variable("datasource")["query"] == "prometheus"
    assert ds["url"].startswith("http") and ds["access"] == "proxy" and ds["uid"]


# --------------------------------------------------------------------------- in a real Prometheus
@pytest.mark.slow
@pytest.mark.parametrize(("panel", "target"), TARGETS, ids=TARGET_IDS)
def test_query_parses_and_returns_data(panel: dict, target: dict, scraped_cluster: ScrapedCluster) -> None:
    expr = substitute(target["expr"])
    body = scraped_cluster.prometheus.check_expr(expr)
    assert body["status"] == "success", f"{expr}\n{body.get('errorType')}: {body.get('error')}"
    assert body["data"]["result"], f"no series for {expr}"


@pytest.mark.slow
def test_host_variable_lists_the_hosts(scraped_cluster: ScrapedCluster) -> None:
    metric = re.search(r"label_values\((\w+), host\)", variable("host")["query"]["query"])
    assert metric
    values = scraped_cluster.prometheus.api("GET", "label/host/values", **{"match[]": metric.group(1)})
    assert values["data"] == ["compute-1", "compute-2", "compute-3"]

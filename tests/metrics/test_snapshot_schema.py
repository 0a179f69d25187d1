"""docs/snapshot.schema.json is the schema generated from balancer.model, and collected snapshots match it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testdriver_hosts import endpoint

from balancer.metrics.collector import Collector
from balancer.model import snapshot_json_schema, snapshot_to_dict

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "snapshot.schema.json"
REGENERATE = (
    'python -c "import json; from balancer.model import snapshot_json_schema as s; '
    'print(json.dumps(s(), indent=2, sort_keys=True))" > docs/snapshot.schema.json'
)


def test_committed_schema_equals_the_generated_one() -> None:
    generated = json.dumps(snapshot_json_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA.read_text() == generated, f"docs/snapshot.schema.json is stale; regenerate: {REGENERATE}"


def test_a_collected_snapshot_has_exactly_the_schemas_top_level_and_host_fields() -> None:
    schema = json.loads(SCHEMA.read_text())
    with Collector.for_endpoints([endpoint("host-a")]) as c:
        data = snapshot_to_dict(c.tick(time.time()))
    assert set(data) == set(schema["properties"])
    assert set(data["hosts"][0]) == set(schema["$defs"]["Host"]["properties"])
    assert set(data["vms"][0]) == set(schema["$defs"]["VM"]["properties"])
    assert set(data["vms"][0]["disks"][0]) == set(schema["$defs"]["Disk"]["properties"])

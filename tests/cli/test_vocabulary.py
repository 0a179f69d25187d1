"""One vocabulary: `status -o json`, the API's /v1/hosts and /v1/vms and the snapshot name the same facts
the same way, against a real `balancer run`; `disk_bytes` is nowhere a host's capacity or a VM's size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from balancer.api.schemas import DiskOut, HostOut, Load, VMOut
from balancer.cli import inspect_cmd
from balancer.model import SNAPSHOT_SCHEMA_VERSION, Host, Snapshot, snapshot_from_json, snapshot_to_dict
from tests.builders import host, snapshot
from tests.cli.running import TOKEN, config, service

app = typer.Typer()
inspect_cmd.register(app)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    cfg = config(tmp_path_factory.mktemp("vocabulary"), automation="off")
    with service(cfg) as url:
        yield cfg, url


def test_status_json_keys_are_the_apis_fields(served: tuple[Path, str]) -> None:
    cfg, url = served
    r = CliRunner().invoke(
        app, ["status", "--vms", "-o", "json", "--config", str(cfg)], env={"BALANCER_API": None}
    )
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    api_hosts = httpx.get(f"{url}/v1/hosts", headers=auth).json()
    api_vms = httpx.get(f"{url}/v1/vms", headers=auth).json()
    assert (
        {frozenset(h) for h in shown["hosts"]}
        == {frozenset(h) for h in api_hosts}
        == {frozenset(HostOut.model_fields)}
    )
    assert (
        {frozenset(v) for v in shown["vms"]}
        == {frozenset(v) for v in api_vms}
        == {frozenset(VMOut.model_fields)}
    )
    assert sorted(h["name"] for h in shown["hosts"]) == sorted(h["name"] for h in api_hosts)


def test_the_snapshot_names_host_and_vm_facts_as_the_api_does(served: tuple[Path, str]) -> None:
    _, url = served
    snap = httpx.get(f"{url}/v1/snapshot", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    host_keys, vm_keys = set(snap["hosts"][0]), set(snap["vms"][0])
    shared_host = {
        "name",
        "state",
        "cpus",
        "memory_bytes",
        "disk_capacity_bytes",
        "disk_free_bytes",
        "labels",
    }
    assert shared_host <= host_keys & set(HostOut.model_fields)
    assert {"name", "uuid", "vcpus", "memory_bytes", "disks"} <= vm_keys & set(VMOut.model_fields)
    # the VM's total is the API's disk_allocated_bytes: the sum of its disks' allocated_bytes, as named there
    disk = next(d for v in snap["vms"] for d in v["disks"])
    assert {"path", "allocated_bytes", "virtual_bytes"} <= set(disk) & set(DiskOut.model_fields)
    for fields in (host_keys, vm_keys, set(HostOut.model_fields), set(VMOut.model_fields)):
        assert "disk_bytes" not in fields  # bytes of VM disks or a host's capacity: each has its own name


def test_a_version_1_snapshot_reads_its_host_capacity_under_the_new_name() -> None:
    data = json.loads(snapshot_to_v1(snapshot(hosts=[host("h1", disk_capacity_bytes=500)])))
    assert data["schema_version"] == 1 and data["hosts"][0]["disk_bytes"] == 500
    snap = snapshot_from_json(json.dumps(data))
    assert snap.schema_version == SNAPSHOT_SCHEMA_VERSION == 2
    assert snap.hosts[0].disk_capacity_bytes == 500 and "disk_bytes" not in Host.__dataclass_fields__


def snapshot_to_v1(snap: Snapshot) -> str:
    """The snapshot as a version 1 file wrote it."""
    data = snapshot_to_dict(snap)
    for h in data["hosts"]:
        h["disk_bytes"] = h.pop("disk_capacity_bytes")
    return json.dumps({**data, "schema_version": 1})


def test_metrics_labels_use_the_apis_names_and_values(served: tuple[Path, str]) -> None:
    _, url = served
    hosts = httpx.get(f"{url}/v1/hosts", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    load = families["balancer_host_load_ratio"].samples
    assert {s.labels["host"] for s in load} == {h["name"] for h in hosts}
    assert set(Load.model_fields) <= {s.labels["resource"] for s in load}  # the API's load keys
    states = {
        (s.labels["host"], s.labels["state"]) for s in families["balancer_host_state"].samples if s.value
    }
    assert states == {(h["name"], h["state"]) for h in hosts}
    vms = {s.labels["host"]: s.value for s in families["balancer_host_vms"].samples}
    assert vms == {h["name"]: h["vms"] for h in hosts}

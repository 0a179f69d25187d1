"""The balancer's config.yaml `hosts:` section for a lab."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import yaml


class HostLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def control_uri(self) -> str: ...
    @property
    def migration_uri(self) -> str: ...


def render(hosts: Sequence[HostLike], cpus: float, memory_mib: int) -> str:
    """YAML with one entry per host. All lab hosts share one real machine, so each declares a
    small capacity (cpus, memory_mib) instead of the machine's."""
    document = {
        "hosts": [
            {
                "name": host.name,
                "uri": host.control_uri,
                "migration_uri": host.migration_uri,
                "labels": {"lab": "true"},
                "capacity": {"cpus": float(cpus), "memory_mib": int(memory_mib)},
            }
            for host in hosts
        ]
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

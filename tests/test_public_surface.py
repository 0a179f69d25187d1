"""Each package's public face is declared (``__all__``) and listed here, as httpx's test_exported_members
does: a change to what a package offers the others is a change to this file too, made on purpose."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import balancer

SURFACE: dict[str, set[str]] = {
    "balancer": {"__version__"},
    "balancer.api": {"ApiContext", "Live", "NotLeader", "ServiceControl", "create_app"},
    "balancer.cli": {"app", "main"},
    "balancer.daemon": {"Running", "api_url", "build", "serve"},
    "balancer.executor": {
        "BackingRegistry",
        "Event",
        "EventSink",
        "ExecutorArgs",
        "Finished",
        "Hypervisor",
        "HypervisorFactory",
        "LibvirtHypervisor",
        "LimitArgs",
        "MigrationEndpoint",
        "MigrationHost",
        "Note",
        "Outcome",
        "OutcomeStatus",
        "Progress",
        "Runner",
        "StateChanged",
        "StorageHost",
        "VmBusy",
        "Waiting",
        "libvirt_factory",
        "reconcile",
        "recover",
        "registry_for",
    },
    "balancer.lab": {
        "Lab",
        "LabCommandError",
        "LabDomain",
        "LabError",
        "LabExistsError",
        "LabGuest",
        "LabHost",
        "LabNotFoundError",
        "LabTimeoutError",
        "default_lab_dir",
    },
    "balancer.metrics": {
        "CollectionArgs",
        "Collector",
        "ControlMetrics",
        "HostEndpoint",
        "HostSample",
        "LoadSource",
        "Metrics",
        "NodeSample",
        "VMSample",
    },
    "balancer.policy": {"GOALS", "PlanArgs", "plan", "workspace"},
    "balancer.service": {"LeaderTerm", "LeaseKeeper", "Service", "holder_id"},
    "balancer.sim": {
        "RunResult",
        "SimArgs",
        "SimCluster",
        "SimExecutor",
        "SimSource",
        "Trace",
        "default_sim_args",
        "run",
    },
    "balancer.store": {
        "AuditEntry",
        "Automation",
        "Blocker",
        "Conflict",
        "DrainProgress",
        "DrainRequest",
        "DrainState",
        "FencedJournal",
        "Lease",
        "MoveStatus",
        "NotFound",
        "PlanMoveRow",
        "PlanRow",
        "PlanStatus",
        "Store",
        "StoreError",
    },
}
# Packages whose __init__ only re-exports: every public name in them is part of the surface.
REEXPORT_ONLY = {"balancer.api", "balancer.daemon", "balancer.executor", "balancer.lab", "balancer.metrics",
                 "balancer.service", "balancer.sim", "balancer.store"}  # fmt: skip


def packages() -> list[str]:
    root = Path(balancer.__file__).parent
    return ["balancer"] + [f"balancer.{m.name}" for m in pkgutil.iter_modules([str(root)]) if m.ispkg]


def test_every_package_is_listed() -> None:
    assert set(packages()) == set(SURFACE)


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_the_declared_surface_is_the_listed_one_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    declared = module.__all__
    assert len(declared) == len(set(declared)), f"{name}.__all__ repeats a name"
    assert set(declared) == SURFACE[name]
    for attr in declared:
        assert getattr(module, attr, None) is not None, f"{name}.{attr} is declared but not there"


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_nothing_public_is_left_undeclared(name: str) -> None:
    """What a package's __init__ defines, or (for a re-exporting one) imports, is declared or private."""
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)  # submodules, `annotations`
        and (name in REEXPORT_ONLY or getattr(value, "__module__", None) == name)
    }
    assert public <= set(module.__all__), sorted(public - set(module.__all__))

"""Running moves: admission under limits, pre-checks, target storage, live block migration, journal.

Public entry points (see each module's docstring)::

    Runner(executor_args, limit_args, hypervisors, store, endpoints,
           sink=..., snapshot=..., rule_check=..., registry=...)
        .submit(moves) -> [MigrationRecord]   .wait(ids, timeout) -> [Outcome]   .abort(id)
        .in_flight()   .queued()   .registry   and shutdown(grace_seconds, abort=False)
    recover(store, hypervisors, executor_args, sink=..., registry=...) -> [MigrationRecord]
    reconcile(record, journal, hypervisors, executor_args, registry=...) -> MigrationRecord
    registry_for(store) -> BackingRegistry   (share one between Runner and recovery)
    libvirt_factory(endpoints) -> hypervisors    MigrationEndpoint(name, uri, migration_uri)
    Progress | StateChanged | Waiting | Finished | Note    (the Event a sink receives)

The seam to the hosts is ``Hypervisor`` (``StorageHost`` + ``MigrationHost``, hypervisor.py), a
``HypervisorFactory`` gives one per host name; ``LibvirtHypervisor`` is its libvirt implementation
(``balancer.sim.hypervisor.SimHypervisor`` the simulated one).

Modules: admission, convergence, ending, xmlfacts (pure); hypervisor (the seam); libvirt_hypervisor
(the only libvirt I/O); prechecks, backing, artifacts (what moves create on targets), cleanup,
migrate, watch, verify, journal, recovery, runner.

The names below load their module on first use (PEP 562 ``__getattr__``), so importing one module of
the executor (``executor.args`` from config, ``executor.admission`` from the simulator) does not load
the Runner, its threads' code or libvirt.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from balancer.executor.args import ExecutorArgs, LimitArgs
    from balancer.executor.artifacts import BackingRegistry, registry_for
    from balancer.executor.events import (
        Event,
        EventSink,
        Finished,
        Note,
        Outcome,
        OutcomeStatus,
        Progress,
        StateChanged,
        Waiting,
    )
    from balancer.executor.facts import MigrationEndpoint
    from balancer.executor.hypervisor import Hypervisor, HypervisorFactory, MigrationHost, StorageHost
    from balancer.executor.libvirt_hypervisor import LibvirtHypervisor, libvirt_factory
    from balancer.executor.recovery import reconcile, recover
    from balancer.executor.runner import Runner, VmBusy

_HOME = {
    "ExecutorArgs": "args",
    "LimitArgs": "args",
    "BackingRegistry": "artifacts",
    "registry_for": "artifacts",
    "Event": "events",
    "EventSink": "events",
    "Finished": "events",
    "Note": "events",
    "Outcome": "events",
    "OutcomeStatus": "events",
    "Progress": "events",
    "StateChanged": "events",
    "Waiting": "events",
    "MigrationEndpoint": "facts",
    "Hypervisor": "hypervisor",
    "HypervisorFactory": "hypervisor",
    "MigrationHost": "hypervisor",
    "StorageHost": "hypervisor",
    "LibvirtHypervisor": "libvirt_hypervisor",
    "libvirt_factory": "libvirt_hypervisor",
    "reconcile": "recovery",
    "recover": "recovery",
    "Runner": "runner",
    "VmBusy": "runner",
}
__all__ = [
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
]


def __getattr__(name: str) -> _typing.Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value

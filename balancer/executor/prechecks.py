"""Pre-checks of one move (Nova's, plus CPU, storage and rules); each failure has its own Reason.

``run_prechecks`` returns a :class:`CheckResult`:

* ``ok`` with the facts later steps need (the source domain, the storage plan);
* ``skip`` when a precondition no longer holds (VM gone, already on the target, not running, already
  migrating): nothing is tried and nothing counts as failed;
* ``fail`` when the move cannot be done as asked (unknown or unusable target, unreachable libvirtd,
  hypervisor/version/CPU mismatch, no memory or disk on the target, no storage pool, a rule broken).

Checks, in order: source ≠ target; both hosts configured; target state (down, maintenance,
draining) when a snapshot is known; both libvirtds answer; the VM is on the source, running, with no
job; not defined on the target; same hypervisor type and target versions ≥ source's; CPU; target
free memory ≥ VM memory + ``memory_headroom_mib`` + memory of migrations already heading there;
disks supported; storage plan (pools, existing files) and free space per pool
(+ ``disk_headroom_mib``); the caller's affinity rules.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor.args import ExecutorArgs
from balancer.executor.backing import StoragePlan, StorageProblem, plan_storage
from balancer.executor.facts import DomainFacts, NodeFacts, VolumeFacts
from balancer.executor.hypervisor import Hypervisor
from balancer.model import HostState, Move, Snapshot
from balancer.reasons import Reason

MIB = 1 << 20
RuleCheck = Callable[[Move, Snapshot], Reason | None]


@dataclass(frozen=True)
class CheckResult:
    status: Literal["ok", "skip", "fail"]
    reason: Reason
    message: str = ""
    error: LibvirtErrorInfo | None = None
    domain: DomainFacts | None = None
    storage: StoragePlan | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _fail(reason: Reason, message: str, error: LibvirtErrorInfo | None = None) -> CheckResult:
    return CheckResult("fail", reason, message, error)


def _skip(reason: Reason, message: str) -> CheckResult:
    return CheckResult("skip", reason, message)


@dataclass(frozen=True)
class CheckContext:
    """What the checks need besides the two hosts."""

    args: ExecutorArgs
    known_hosts: Collection[str]
    snapshot: Snapshot | None = None
    rule_check: RuleCheck | None = None
    incoming_memory_bytes: int = 0  # memory of other migrations already admitted to this target


def run_prechecks(move: Move, hypervisors: Callable[[str], Hypervisor], ctx: CheckContext) -> CheckResult:
    """Every pre-check of ``move``; the first that does not pass decides the result."""
    if move.source == move.target:
        return _fail(Reason.SAME_HOST, f"source and target are both {move.source}")
    if move.target not in ctx.known_hosts:
        return _fail(Reason.TARGET_UNKNOWN, f"target {move.target} is not a configured host")
    if move.source not in ctx.known_hosts:
        return _fail(Reason.SOURCE_DOWN, f"source {move.source} is not a configured host")
    state = _target_state(move.target, ctx.snapshot)
    if state in (HostState.MAINTENANCE, HostState.DRAINING):
        return _fail(Reason.TARGET_IN_MAINTENANCE, f"target {move.target} is {state.value}")
    if state == HostState.DOWN:
        return _fail(Reason.TARGET_DOWN, f"target {move.target} was down at the last collection")
    src, dst = hypervisors(move.source), hypervisors(move.target)
    src_node = _answer(src, Reason.SOURCE_DOWN)
    if isinstance(src_node, CheckResult):
        return src_node
    dst_node = _answer(dst, Reason.TARGET_DOWN)
    if isinstance(dst_node, CheckResult):
        return dst_node
    try:
        return _checks(move, src, dst, src_node, dst_node, ctx)
    except MigrationError as exc:
        who = Reason.TARGET_DOWN if exc.host == move.target else Reason.SOURCE_DOWN
        return _fail(who, f"pre-check call failed: {exc}", exc.info)


def _target_state(target: str, snap: Snapshot | None) -> HostState | None:
    if snap is None:
        return None
    try:
        return snap.host(target).state
    except KeyError:
        return None


def _answer(hv: Hypervisor, reason: Reason) -> NodeFacts | CheckResult:
    try:
        return hv.node()
    except MigrationError as exc:
        return _fail(reason, f"libvirtd on {hv.name} does not answer: {exc.info.message}", exc.info)


def _checks(
    move: Move, src: Hypervisor, dst: Hypervisor, sn: NodeFacts, dn: NodeFacts, ctx: CheckContext
) -> CheckResult:
    dom = src.domain(move.vm)
    if dom is None:
        there = dst.domain(move.vm)
        if there is not None and there.running:
            return _skip(Reason.VM_ALREADY_ON_TARGET, f"{move.vm} already runs on {move.target}")
        return _skip(Reason.VM_NOT_FOUND, f"{move.vm} is not on {move.source} any more")
    if not dom.running:
        return _skip(
            Reason.NOT_RUNNING, f"{move.vm} is {dom.state} on {move.source}; live migration needs it running"
        )
    if dom.job_active:
        return _skip(Reason.IN_FLIGHT, f"{move.vm} already has a job (migration?) running on {move.source}")
    other = dst.domain(dom.uuid)
    if other is not None:
        return _fail(
            Reason.VM_ALREADY_ON_TARGET,
            f"{move.vm} is also defined on {move.target} ({other.state}); resolve by hand",
        )
    if sn.hypervisor_type != dn.hypervisor_type:
        return _fail(
            Reason.HYPERVISOR_MISMATCH, f"source is {sn.hypervisor_type}, target is {dn.hypervisor_type}"
        )
    if dn.hypervisor_version < sn.hypervisor_version or dn.libvirt_version < sn.libvirt_version:
        return _fail(
            Reason.VERSION_INCOMPATIBLE,
            f"target {_v(dn.hypervisor_version)}/libvirt {_v(dn.libvirt_version)} is older than source "
            f"{_v(sn.hypervisor_version)}/libvirt {_v(sn.libvirt_version)}",
        )
    if dom.cpu_mode == "host-passthrough" and sn.cpu_model != dn.cpu_model:
        return _fail(Reason.CPU_INCOMPATIBLE, f"host-passthrough CPU {sn.cpu_model} vs target {dn.cpu_model}")
    if not dst.cpu_compatible(dom):
        return _fail(Reason.CPU_INCOMPATIBLE, f"target {move.target} cannot provide the CPU of {move.vm}")
    need = dom.memory_bytes + ctx.args.memory_headroom_mib * MIB + ctx.incoming_memory_bytes
    if dn.free_memory_bytes < need:
        return _fail(
            Reason.TARGET_NO_MEMORY,
            f"target {move.target} has {dn.free_memory_bytes // MIB} MiB free, needs {need // MIB} MiB "
            f"({dom.memory_bytes // MIB} VM + {ctx.args.memory_headroom_mib} headroom"
            f" + {ctx.incoming_memory_bytes // MIB} incoming)",
        )
    if dom.other_disk_sources:
        return _fail(
            Reason.UNSUPPORTED_DISK,
            f"{move.vm} has disks that are not writable local files: {', '.join(dom.other_disk_sources)}",
        )
    storage = _storage(dom, src, dst, ctx.args)
    if isinstance(storage, StorageProblem):
        return _fail(storage.reason, storage.message)
    space = _space(storage, dst, ctx.args)
    if space is not None:
        return space
    if ctx.rule_check is not None and ctx.snapshot is not None:
        broken = ctx.rule_check(move, ctx.snapshot)
        if broken is not None:
            return _fail(broken, f"moving {move.vm} to {move.target} breaks rule {broken.value}")
    return CheckResult("ok", Reason.SUCCEEDED, "", None, dom, storage)


def _storage(
    dom: DomainFacts, src: Hypervisor, dst: Hypervisor, args: ExecutorArgs
) -> StoragePlan | StorageProblem:
    src.pools()  # refreshes the source pools so sizes are current
    paths = {d.path for d in dom.disks} | {b.path for d in dom.disks for b in d.backing}
    src_vols: dict[str, VolumeFacts | None] = {p: src.volume(p) for p in paths}
    dst_pools = dst.pools()
    dst_vols: dict[str, VolumeFacts | None] = {p: dst.volume(p) for p in paths}
    return plan_storage(dom, src_vols, dst_pools, dst_vols, args.copy_mode)


def _space(plan: StoragePlan, dst: Hypervisor, args: ExecutorArgs) -> CheckResult | None:
    """Enough free space for what the move writes, per file system. Directory pools on one file system
    each report that file system's free space, so a move writing into two of them (an overlay in one,
    the base image it needs in another) must fit once, summed. libvirt does not say which file system
    a pool is on: pools reporting the same free bytes are taken to share one (on different file
    systems that is a coincidence, and it only makes the check stricter)."""
    pools = {p.name: p for p in dst.pools()}
    shared: dict[int, list[tuple[str, int]]] = {}
    for name, need in sorted(plan.pool_needs().items()):
        shared.setdefault(pools[name].available if name in pools else 0, []).append((name, need))
    for free, members in shared.items():
        need = sum(n for _, n in members)
        want = need + args.disk_headroom_mib * MIB
        if free < want:
            names = " and ".join(name for name, _ in members)
            where = f"pool {names}" if len(members) == 1 else f"pools {names} (one file system)"
            return _fail(
                Reason.TARGET_NO_DISK,
                f"{where} on {dst.name} has {free // MIB} MiB free, needs {want // MIB} MiB "
                f"({need // MIB} to copy + {args.disk_headroom_mib} headroom)",
            )
    return None


def _v(n: int) -> str:
    return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"

"""SimExecutor: runs Moves on the simulated cluster in simulated time, under the real admission logic.

It takes Moves like ``executor.runner.Runner.submit`` (same queue semantics: queued moves stay queued
across ticks until admitted) and, whenever a move is submitted or a migration ends, asks the real
``executor.admission.admit`` which queued moves may start under ``LimitArgs`` (global, per-source and
per-target slots, per-host bandwidth budget). Each admitted move then:

1. is pre-checked by the executor's own ``run_prechecks``, on SimHypervisors over the cluster as it
   stands (``sim/hosts.py``): a VM no longer on the move's source, or migrating, is *skipped* (journal
   ``aborted`` with the reason, nothing tried); a target without memory beyond
   ``ExecutorArgs.memory_headroom_mib`` and the migrations already heading there, or without disk for
   the overlay and any missing backing image in its pools, *fails* the move;
2. copies, at its bandwidth cap (``admission.effective_bandwidth``), the bytes of the cost model
   (policy/cost.py) computed from the cluster at the moment it starts: the overlay, the backing image
   when the target lacks it, RAM × the re-send factor of the VM's dirty rate. It lasts bytes ÷ cap
   seconds, holding its admission slots and bandwidth on both hosts all that time, and costs
   ``SimArgs.migration_overhead_cores`` on the source and on the target;
3. succeeds at the end: the VM and its backing image are on the target from that instant.

Nothing fails at random and no migration is aborted: a migration at ≤ 60 MiB/s dirty rate under a
100 MiB/s cap converges, and 800 s per GiB (the completion timeout) is far above ~10 s per GiB.
Every record is a ``MigrationRecord`` with sequential ids, so a run is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from balancer.executor import admission
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.journal import new_record
from balancer.executor.prechecks import CheckContext, run_prechecks
from balancer.model import MigrationRecord, Move, MoveState, PastMove
from balancer.policy.args import PolicyArgs
from balancer.policy.cost import resend_factor
from balancer.reasons import Reason
from balancer.sim.cluster import MIB, SimCluster
from balancer.sim.hosts import hypervisors


@dataclass
class _Job:
    record: MigrationRecord
    move: Move
    seq: int
    after: frozenset[str] = frozenset()  # ids of the moves that must first take a VM off its target
    ends_at: float = 0.0
    result: tuple[MoveState, Reason, str] | None = None  # final state when it ends


class SimExecutor:
    """Executes moves on a SimCluster; registers itself as one of the cluster clock's processes."""

    def __init__(
        self,
        cluster: SimCluster,
        limits: LimitArgs,
        executor: ExecutorArgs | None = None,
        resend_cap: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.limits = limits
        self.args = executor or ExecutorArgs.model_validate({})
        self.resend_cap = (
            resend_cap if resend_cap is not None else PolicyArgs.model_validate({}).memory_resend_cap
        )
        self.queue: list[_Job] = []
        self.running: list[_Job] = []
        self.finished: list[MigrationRecord] = []
        self.waits: Counter[Reason] = Counter()  # each time a queued move starts waiting for a new reason
        self._wait_of: dict[str, Reason] = {}
        self._seq = 0
        cluster.processes.append(self)

    # ------------------------------------------------------------------ the Runner's interface
    def submit(
        self, moves: Iterable[Move], plan_id: int | None = None, bandwidth_mib_s: int | None = None
    ) -> list[MigrationRecord]:
        """Queue moves (in plan order) at the cluster's current time; returns their ``queued`` records."""
        now = self.cluster.now
        bw = admission.effective_bandwidth(bandwidth_mib_s or 0, self.limits)
        out = []
        for move in moves:
            rec = new_record(move, now, bw, plan_id, record_id=f"sim{self._seq:06d}")  # deterministic ids
            after = admission.room_from(move, (*self.queue, *self.running))
            self.queue.append(_Job(rec, move, self._seq, after))
            self._seq += 1
            out.append(rec)
        self._admit(now)
        return out

    def queued(self) -> list[MigrationRecord]:
        return [j.record for j in sorted(self.queue, key=lambda j: (j.record.priority, j.seq))]

    def in_flight(self) -> list[MigrationRecord]:
        """Records of the migrations running now (admitted, not finished)."""
        return [j.record for j in self.running]

    def pending_moves(self) -> tuple[Move, ...]:
        """Moves queued or running: what the service passes as ``PlannerState.in_flight``."""
        return tuple(j.move for j in (*self.queue, *self.running))

    def busy_vms(self) -> set[str]:
        return {j.move.vm for j in (*self.queue, *self.running)}

    def recent(self, since: float) -> tuple[PastMove, ...]:
        """Finished migrations at or after ``since``, oldest first (as ``store.recent_moves``)."""
        return tuple(
            PastMove(r.vm, r.source, r.target, r.finished_at or r.updated_at, r.state == MoveState.SUCCEEDED)
            for r in self.finished
            if (r.finished_at or r.updated_at) >= since
        )

    # ------------------------------------------------------------------ clock process
    def next_event(self) -> float | None:
        return min((j.ends_at for j in self.running), default=None)

    def fire(self, now: float) -> None:
        """End every migration due by ``now`` (in end-time order), then admit what now fits."""
        due = sorted((j for j in self.running if j.ends_at <= now + 1e-9), key=lambda j: (j.ends_at, j.seq))
        for job in due:
            self.running.remove(job)
            self._end(job, now)
        self._admit(now)

    # ------------------------------------------------------------------ internals
    def _admit(self, now: float) -> None:
        if not self.queue:
            return
        pending, running = admission.inputs(self.queue, self.running)
        by_id = {j.record.id: j for j in self.queue}
        for d in admission.admit(pending, running, self.limits, self.cluster.n_hosts):
            job = by_id[d.id]
            if isinstance(d, admission.Wait):
                if self._wait_of.get(d.id) != d.reason:
                    self._wait_of[d.id] = d.reason
                    self.waits[d.reason] += 1
                continue
            self._wait_of.pop(d.id, None)
            self.queue.remove(job)
            self.running.append(job)
            self._start(job, now)

    def _start(self, job: _Job, now: float) -> None:
        c, mv = self.cluster, job.move
        check = self._precheck(mv)
        if check is not None:
            job.ends_at, job.result = now, check
            job.record = replace(job.record, state=MoveState.PRECHECKING, started_at=now, updated_at=now)
            return
        v, t = c.vm_index[mv.vm], c.host_index[mv.target]
        bw = job.record.bandwidth_mib_s * MIB
        ram = int(np.floor(c.memory[v] * resend_factor(np.array([c.dirty[v]]), bw, self.resend_cap)[0]))
        disk, backing = int(c.overlay[v]), c.missing_backing(v, t)
        job.ends_at = now + (disk + backing + ram) / bw
        job.result = (MoveState.SUCCEEDED, Reason.SUCCEEDED, "")
        job.record = replace(
            job.record,
            state=MoveState.MIGRATING,
            started_at=now,
            updated_at=now,
            disk_bytes=disk,
            backing_bytes=backing,
            memory_bytes=ram,
        )
        c.begin_migration(v, t)

    def _precheck(self, mv: Move) -> tuple[MoveState, Reason, str] | None:
        """The executor's own pre-checks on the cluster as it stands: None when the move may start, else
        (ABORTED for a skip | FAILED, reason, message)."""
        c = self.cluster
        t = c.host_index.get(mv.target)
        incoming = 0 if t is None else int(c.incoming_memory[t])
        ctx = CheckContext(self.args, c.host_names, incoming_memory_bytes=incoming)
        check = run_prechecks(mv, hypervisors(c), ctx)
        if check.ok:
            return None
        return (
            (MoveState.ABORTED if check.status == "skip" else MoveState.FAILED),
            check.reason,
            check.message,
        )

    def _end(self, job: _Job, now: float) -> None:
        assert job.result is not None
        state, reason, detail = job.result
        if job.record.state == MoveState.MIGRATING:
            c = self.cluster
            c.end_migration(
                c.vm_index[job.move.vm], c.host_index[job.move.target], state == MoveState.SUCCEEDED
            )
        job.record = replace(
            job.record, state=state, outcome=reason, detail=detail, finished_at=now, updated_at=now
        )
        self.finished.append(job.record)

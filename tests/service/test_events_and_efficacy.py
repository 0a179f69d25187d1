"""What the service makes of the executor's events (service/events.py: metrics, log lines, live progress,
the outcome queue) and of finished moves some minutes later (service/efficacy.py: did the move help?)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from balancer.errors import LibvirtErrorInfo
from balancer.executor.events import Finished, Note, Outcome, OutcomeStatus, Progress, StateChanged, Waiting
from balancer.metrics.export import Metrics
from balancer.model import LoadChange, MoveState
from balancer.reasons import Reason
from balancer.service.efficacy import Efficacy
from balancer.service.events import ServiceSink
from tests.builders import GIB, NOW, host, snapshot, vm
from tests.store.builders import move, record

MIB = 2**20


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def progress_of(rid: str, source: str, target: str, rate: float, copied: int = 10 * MIB) -> Progress:
    return Progress(rid, "vm1", source, target, "disk", copied, 90 * MIB, rate, 12.5, memory_iteration=3)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_progress_is_kept_per_running_move_and_adds_up_per_host(metrics: Metrics) -> None:
    finished: list[Outcome] = []
    sink = ServiceSink(metrics, finished.append)
    sink(progress_of("m1", "n1", "n2", 10 * MIB))
    sink(progress_of("m2", "n1", "n3", 20 * MIB))
    now = sink.progress("m1")
    assert now is not None
    assert (now.phase, now.bytes_copied, now.bytes_remaining, now.elapsed_seconds, now.memory_iteration) == (
        "disk",
        10 * MIB,
        90 * MIB,
        12.5,
        3,
    )
    assert metrics.state.state.host_bandwidth == {"n1": 30 * MIB, "n2": 10 * MIB, "n3": 20 * MIB}
    sink(progress_of("m1", "n1", "n2", 5 * MIB, copied=40 * MIB))  # a later poll replaces the earlier
    assert sink.progress("m1").bytes_copied == 40 * MIB  # type: ignore[union-attr]
    assert sink.progress("nope") is None

    sink.retain({"m2"})  # m1 left to another leader without a Finished event
    assert sink.progress("m1") is None
    assert metrics.state.state.host_bandwidth == {"n1": 20 * MIB, "n3": 20 * MIB}
    assert finished == []


def test_a_finished_move_is_counted_logged_and_queued_for_the_service(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    finished: list[Outcome] = []
    sink = ServiceSink(metrics, finished.append)
    sink(progress_of("m1", "n1", "n2", 10 * MIB))
    rec = record(
        "m1",
        state=MoveState.FAILED,
        started_at=NOW,
        finished_at=NOW + 42,
        disk_bytes=3 * GIB,
        memory_bytes=GIB,
        backing_bytes=0,
        downtime_ms=None,
        error_code=9,
        error_message="operation failed: job aborted",
    )
    out = Outcome(OutcomeStatus.FAILED, Reason.MIGRATION_FAILED, rec, LibvirtErrorInfo(9, 10, "job aborted"))
    caplog.set_level(logging.INFO, logger="balancer.executor")
    sink(Finished(out))
    assert finished == [out]
    assert sink.progress("m1") is None and metrics.state.state.host_bandwidth == {}
    registry = metrics.registry
    assert (
        sample(registry, "balancer_migrations_finished_total", result="failed", reason="migration_failed")
        == 1
    )
    assert sample(registry, "balancer_migration_copied_bytes_total", kind="disk") == 3 * GIB
    assert sample(registry, "balancer_migration_copied_bytes_total", kind="memory") == GIB
    assert sample(registry, "balancer_migration_duration_seconds_sum") == 42
    assert sample(registry, "balancer_migration_downtime_seconds_count") == 0  # none measured
    (line,) = [r for r in caplog.records if "event=migration_finished" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "result=failed reason=migration_failed" in line.getMessage()
    assert "error='operation failed: job aborted (libvirt code 9)'" in line.getMessage()


def test_state_changes_waits_and_notes_are_one_log_line_each(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ServiceSink(metrics, lambda _out: None)
    caplog.set_level(logging.INFO, logger="balancer.executor")
    sink(StateChanged(record("m1", state=MoveState.MIGRATING, epoch=3), MoveState.PRECHECKING))
    sink(Waiting("m1", "vm1", Reason.WAIT_GLOBAL_LIMIT, "2 of 2 migrations running"))
    sink(Note("m1", "vm1", Reason.NOT_CONVERGING, "dirty rate over the cap", action="raise_downtime"))
    sink(Note("m1", "vm1", None, "just saying"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("event=migration_state id=m1 vm=vm1 source=n1 target=n2 state=migrating")
    assert "previous=prechecking epoch=3" in lines[0]
    assert (
        lines[1]
        == "event=migration_waiting id=m1 vm=vm1 reason=wait_global_limit detail='2 of 2 migrations running'"
    )
    assert "reason=not_converging action=raise_downtime" in lines[2]
    assert "reason=None action=None message='just saying'" in lines[3]
    assert sample(metrics.registry, "balancer_convergence_actions_total", action="raise_downtime") == 1


def moved(vm_name: str = "web") -> object:
    """A move off h1 predicted to take h1's CPU from 0.9 to 0.5 and h2's from 0.1 to 0.3."""
    return move(
        vm_name,
        "h1",
        "h2",
        source_load=LoadChange(before={"cpu": 0.9}, after={"cpu": 0.5}),
        target_load=LoadChange(before={"cpu": 0.1}, after={"cpu": 0.3}),
    )


def loads(h1_cores: float, h2_cores: float):  # type: ignore[no-untyped-def]
    """h1 and h2 of 10 cores each, running VMs worth the given cores."""
    return snapshot(
        hosts=[host("h1", cpus=10.0), host("h2", cpus=10.0)],
        vms=[vm("a", "h1", cpu_cores=h1_cores), vm("b", "h2", cpu_cores=h2_cores)],
    )


def test_a_move_is_judged_once_its_delay_passed_against_the_observed_load(metrics: Metrics) -> None:
    efficacy = Efficacy(metrics, delay_seconds=300)
    efficacy.moved(moved(), finished_at=NOW)  # type: ignore[arg-type]
    assert efficacy.check(loads(6.0, 3.0), NOW + 299) == 0  # not due yet
    assert efficacy.check(loads(6.0, 3.0), NOW + 300) == 1
    assert efficacy.check(loads(6.0, 3.0), NOW + 900) == 0  # judged once
    registry = metrics.registry
    assert sample(registry, "balancer_moves_evaluated_total", helped="true") == 1
    # errors: h1 observed 0.6 vs 0.5 predicted, h2 0.3 vs 0.3 (the snapshot's load ratios)
    assert sample(registry, "balancer_move_prediction_error_ratio_count") == 2
    assert sample(registry, "balancer_move_prediction_error_ratio_sum") == pytest.approx(0.1, abs=0.02)


def test_a_source_as_busy_as_before_did_not_help_and_a_move_without_prediction_is_not_judged(
    metrics: Metrics,
) -> None:
    efficacy = Efficacy(metrics, delay_seconds=0)
    efficacy.moved(moved(), finished_at=NOW)  # type: ignore[arg-type]
    efficacy.moved(move("plain", "h1", "h2"), finished_at=NOW)  # no predicted loads: nothing to compare
    assert efficacy.check(loads(9.5, 1.0), NOW) == 1
    assert sample(metrics.registry, "balancer_moves_evaluated_total", helped="false") == 1
    assert sample(metrics.registry, "balancer_moves_evaluated_total", helped="true") is None  # one judged

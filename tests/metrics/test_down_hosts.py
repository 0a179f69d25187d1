"""Hosts that refuse or never answer: marked DOWN with the reason, without stalling the others.

The silent server accepts libvirt's connection and never replies, as a hung libvirtd or a
black-holed network would. Timings use generous margins (this runs on 2 cores next to other work).
"""

from __future__ import annotations

import time

from testdriver_hosts import REFUSED_URI, SilentServer, endpoint

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.libvirt_source import LibvirtSource
from balancer.metrics.polling import MAX_HUNG_POLLS
from balancer.metrics.source import HostEndpoint
from balancer.model import HostState

TIMEOUT = 1.0
MARGIN = 1.5


def args(**kw: object) -> CollectionArgs:
    return CollectionArgs(host_timeout_seconds=TIMEOUT, workers=4, **kw)  # type: ignore[arg-type]


def test_refused_connection_is_down_with_libvirts_code_and_text() -> None:
    with Collector.for_endpoints([HostEndpoint("gone", REFUSED_URI), endpoint("host-b")], args()) as c:
        snap = c.tick(1000.0)
        (sample, _) = c.last_samples
    gone = snap.host("gone")
    assert gone.state == HostState.DOWN
    assert sample.error is not None
    assert (sample.error.kind, sample.error.code) == ("connect", 38)  # VIR_ERR_SYSTEM_ERROR
    assert "Failed to connect socket to '/nonexistent/libvirt-sock'" in sample.error.message
    assert gone.error == str(sample.error) and "(libvirt code 38)" in gone.error
    assert snap.vms_on("gone") == ()
    assert snap.host("host-b").state == HostState.UP


def test_missing_test_driver_file_is_a_connect_error() -> None:
    with LibvirtSource([HostEndpoint("nofile", "test:///nonexistent/host.xml")], args()) as source:
        (sample,) = source.collect(0.0)
    assert sample.error is not None and sample.error.kind == "connect"
    assert sample.error.code == 27  # VIR_ERR_XML_ERROR


def test_a_silent_host_costs_one_timeout_and_the_others_are_collected(silent_server: SilentServer) -> None:
    endpoints = [
        endpoint("host-a"),
        HostEndpoint("silent", silent_server.uri),
        endpoint("host-b"),
        endpoint("host-c"),
    ]
    with Collector.for_endpoints(endpoints, args()) as c:
        started = time.monotonic()
        snap = c.tick(1000.0)
        took = time.monotonic() - started
        silent = c.last_samples[1]
    assert TIMEOUT * 0.9 <= took < TIMEOUT + MARGIN
    assert [h.state for h in snap.hosts] == [HostState.UP, HostState.DOWN, HostState.UP, HostState.UP]
    assert silent.error is not None and silent.error.kind == "timeout"
    assert "no answer within 1 s (connecting)" in silent.error.message
    assert len(snap.vms) == 8


def test_a_hung_call_does_not_block_the_next_tick_and_its_connection_is_never_reused(
    silent_server: SilentServer,
) -> None:
    endpoints = [HostEndpoint("silent", silent_server.uri), endpoint("host-c")]
    with Collector.for_endpoints(endpoints, args(reconnect_min_seconds=10, reconnect_max_seconds=10)) as c:
        c.tick(1000.0)
        started = time.monotonic()
        snap = c.tick(1005.0)  # within the backoff: not tried again, and nothing waits for the hung call
        assert time.monotonic() - started < 0.5
        assert snap.host("silent").state == HostState.DOWN
        assert snap.host("host-c").state == HostState.UP
        started = time.monotonic()
        snap = c.tick(1011.0)  # backoff over: a fresh connection, the hung one stays abandoned
        assert time.monotonic() - started < TIMEOUT + MARGIN
        deadline = time.monotonic() + 2
        while silent_server.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert silent_server.connections == 2
        assert snap.host("silent").state == HostState.DOWN


def test_attempts_stop_while_too_many_calls_to_a_host_still_hang(silent_server: SilentServer) -> None:
    with LibvirtSource([HostEndpoint("silent", silent_server.uri)], args(reconnect_max_seconds=1)) as source:
        now = 0.0
        for _ in range(MAX_HUNG_POLLS):
            source.collect(now)
            now += 100
        started = time.monotonic()
        (sample,) = source.collect(now)
        assert time.monotonic() - started < 0.5
    assert sample.error is not None and sample.error.kind == "timeout"
    assert f"{MAX_HUNG_POLLS} earlier polls still hang" in sample.error.message
    assert silent_server.connections == MAX_HUNG_POLLS


def test_more_silent_hosts_than_workers_still_finish_in_bounded_time(silent_server: SilentServer) -> None:
    endpoints = [HostEndpoint(f"silent{i}", silent_server.uri) for i in range(3)] + [endpoint("host-b")]
    with Collector.for_endpoints(endpoints, CollectionArgs(host_timeout_seconds=TIMEOUT, workers=2)) as c:
        started = time.monotonic()
        snap = c.tick(0.0)
        took = time.monotonic() - started
    # two waves of timeouts at most: hung workers are replaced, so host-b is never starved
    assert took < 2 * TIMEOUT + MARGIN
    assert snap.host("host-b").state == HostState.UP
    assert [h.state for h in snap.hosts[:3]] == [HostState.DOWN] * 3

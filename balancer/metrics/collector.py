"""Collector: a LoadSource plus the smoothing state; ``tick(now)`` returns the tick's Snapshot.

This is what ``balancer status``, ``balancer snapshot --out FILE`` and the service loop call::

    with Collector.for_endpoints(endpoints, args) as collector:
        snap = collector.tick(time.time())

The first tick has no CPU rates yet (every running VM reports 0.0 cores, see window.py); a one-shot
command that wants CPU load ticks twice, about a second apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from balancer.metrics.args import CollectionArgs, default_args
from balancer.metrics.snapshot import build_snapshot
from balancer.metrics.source import HostEndpoint, HostSample, LoadSource
from balancer.metrics.window import WindowState, advance
from balancer.model import Snapshot


class Collector:
    """Owns a LoadSource and the window state; not thread-safe (one tick at a time)."""

    def __init__(self, source: LoadSource, args: CollectionArgs | None = None) -> None:
        self.source = source
        self.args = args or default_args()
        self.state = WindowState()
        self.last_samples: list[HostSample] = []  # raw samples of the last tick (errors, poll durations)

    @classmethod
    def for_endpoints(
        cls, endpoints: Sequence[HostEndpoint], args: CollectionArgs | None = None
    ) -> Collector:
        """A Collector polling the endpoints over libvirt."""
        from balancer.metrics.libvirt_source import LibvirtSource  # libvirt only when it is used

        args = args or default_args()
        return cls(LibvirtSource(endpoints, args), args)

    def tick(self, now: float) -> Snapshot:
        """Poll every host once and return the smoothed Snapshot taken at ``now`` (epoch seconds)."""
        samples = self.source.collect(now)
        self.state = advance(
            self.state, samples, self.args.window, self.args.history, self.args.spread_window
        )
        self.last_samples = samples
        return build_snapshot(samples, self.state, now)

    def poll_seconds(self) -> dict[str, float]:
        """How long each host's last poll took (for ``balancer_host_collection_duration_seconds``)."""
        return {s.name: s.duration_seconds for s in self.last_samples}

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Collection and export: load from every host into a Snapshot; every ``balancer_*`` metric.

::

    source.py          LoadSource (the seam) and what it returns: HostSample, VMSample, NodeSample
    libvirt_source.py  LoadSource over libvirt: one connection per host, concurrent polls, per-host timeout
    polling.py  workers.py  reconnect.py   how libvirt_source polls: threads, timeouts, backoff
    domain.py          one domain's bulk-stats record and XML -> VMSample
    window.py          pure: smoothing and "hot for N ticks" counters
    snapshot.py        pure: samples + window -> Snapshot
    collector.py       Collector: a LoadSource plus the window, tick(now) -> Snapshot
    args.py            CollectionArgs (config.yaml ``collection``)
    export.py          Metrics, ControlMetrics: every balancer_* metric, the state gauges built at scrape
"""

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.export import ControlMetrics, Metrics
from balancer.metrics.source import HostEndpoint, HostSample, LoadSource, NodeSample, VMSample

__all__ = [
    "CollectionArgs",
    "Collector",
    "ControlMetrics",
    "HostEndpoint",
    "HostSample",
    "LoadSource",
    "Metrics",
    "NodeSample",
    "VMSample",
]

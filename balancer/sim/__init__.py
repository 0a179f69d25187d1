"""A trace-driven simulated cluster for benchmarks at fleet scale (no real hosts, no libvirt, simulated time).

What is real and what is simulated:

* real: the Collector and its smoothing window (``metrics.collector``/``window``/``snapshot``) fed by
  ``SimSource`` through the ``LoadSource`` seam; the planner (``policy.plan``); admission under
  ``LimitArgs`` (``executor.admission.admit``); the cost model (``policy.cost``) for bytes and seconds.
* simulated: hosts and VMs (sizes and disks drawn from seeded distributions, args.py), each VM's CPU
  (a real PlanetLab trace, trace.py), migrations (bytes ÷ cap seconds, slots, overhead; executor.py)
  and the clock (cluster.py).
* real again: each admitted move passes the executor's own pre-checks (``executor.prechecks``),
  run through the ``Hypervisor`` seam on ``SimHypervisor`` (hypervisor.py) over views of the cluster's
  hosts (hosts.py). The executor's unit tests run the real Runner on the same SimHypervisor.

Modules: ``args`` (SimArgs), ``trace`` (PlanetLab loader), ``cluster`` (state, clock, exact integrals),
``source`` (SimSource), ``hypervisor`` (SimHosts, SimHypervisor, Faults), ``hosts`` (the cluster's hosts
as SimHosts), ``executor`` (SimExecutor), ``baselines`` (planners to compare with),
``run`` (one simulated day), ``score`` (its figures).
"""

from balancer.sim.args import SimArgs, default_sim_args
from balancer.sim.cluster import SimCluster
from balancer.sim.executor import SimExecutor
from balancer.sim.run import RunResult, run
from balancer.sim.source import SimSource
from balancer.sim.trace import Trace

__all__ = [
    "RunResult",
    "SimArgs",
    "SimCluster",
    "SimExecutor",
    "SimSource",
    "Trace",
    "default_sim_args",
    "run",
]

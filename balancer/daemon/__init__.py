"""The composition root: ``balancer run`` wires the store, the service, the API server and the loop.

It sits above both the service and the API (neither imports the other's runtime): ``build`` makes
the parts, ``serve`` binds the API's port before anything may lead, runs the loop on the monotonic
clock, reloads the config on SIGHUP and stops cleanly on SIGTERM.

::

    build.py    Running: the parts of one instance (store, metrics, collector, lease, service)
    loop.py     the tick/intake loop on the monotonic clock
    notify.py   systemd readiness notification (sd_notify)
    reload.py   SIGHUP: a new config, validated, applied or refused
    serve.py    `balancer run`: bind, start, signals, stop
"""

from balancer.daemon.build import Running, api_url, build
from balancer.daemon.serve import serve

__all__ = ["Running", "api_url", "build", "serve"]

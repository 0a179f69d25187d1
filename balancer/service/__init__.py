"""The service: one tick of collect → plan → act, leadership terms, drains, events and logs.

::

    core.py         Service: tick, intake, terms, and what the API may ask (ServiceControl)
    acting.py       what each automation level starts; stored plans and proposals
    leadership.py   the leader lease in a thread, and the term (epoch) it grants
    drains.py       drain progress and the leader's drain bookkeeping
    efficacy.py     did a move help? prediction vs observed load
    events.py       executor events → metrics, logs, live progress, the outcome queue
    wiring.py       Config → the values the packages below take
    logs.py         text or JSON log lines
    libvirt_process.py  libvirt's process-wide set-up (error handler, event loop), called where a
                    process starts: daemon.build, the CLI's commands that talk to libvirtd, the tests
"""

from balancer.service.core import Service
from balancer.service.leadership import LeaderTerm, LeaseKeeper, holder_id

__all__ = ["LeaderTerm", "LeaseKeeper", "Service", "holder_id"]

"""The HTTP API (FastAPI): drains, plans, migrations, hosts and VMs, health and /metrics.

::

    app.py         create_app(ctx) -> FastAPI; ApiContext (context.py) is everything it serves from
    routes/        one router per resource: health, cluster (hosts, vms), drains, plans, migrations
    actions.py     what operators do (drain, undrain, approve, ...): validation + one store call;
                   the CLI's store fallback calls the same functions
    schemas.py     request/response models;  views.py  model/store values -> those models
    auth.py        bearer tokens and roles;  errors.py  the one place exceptions become responses,
                   {code, detail} with the stable codes of balancer.errors.ErrorCode
    middleware.py  the request gate (auth, body size) and balancer_api_requests_total

The public face: ``create_app(ctx)`` and what a service implements for it (``ApiContext``, ``Live``,
``ServiceControl``, ``NotLeader``); the CLI also uses ``schemas`` (bodies) and ``actions`` (--local).
"""

from balancer.api.app import create_app
from balancer.api.context import ApiContext, Live, NotLeader, ServiceControl

__all__ = ["ApiContext", "Live", "NotLeader", "ServiceControl", "create_app"]

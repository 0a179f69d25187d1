"""Policy test setup: hypothesis' ``policy`` profile. (``tests.builders`` and ``bench.exact`` import from the
repository root: pyproject's ``pythonpath = ["."]``.)"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "policy", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

"""Policy test setup: the repository root on sys.path, so ``tests.builders`` and ``bench.exact`` import
under a bare ``pytest`` as under ``python -m pytest`` (``pythonpath = ["."]`` in pyproject would do it)."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "policy", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

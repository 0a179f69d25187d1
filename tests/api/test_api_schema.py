"""Schemathesis against the app's own OpenAPI document, in process: no 5xx, responses match the schema.

Every operation gets valid (positive) and invalid (negative) requests, seeded and bounded, sent with a
write token over a store holding a plan, two journal records and an open drain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from balancer.api.app import create_app
from balancer.model import MoveState
from balancer.store import Store
from tests.api.harness import NOW, WRITE, config, context, plan
from tests.leader import fence_of
from tests.store.builders import record

EXAMPLES = 30


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    url = f"sqlite:///{tmp_path}/balancer.db"
    with Store.open(url, now=0.0) as store:
        store.save_plan(plan(), "recommend", NOW, fence=fence_of(store))
        store.save_record(
            record("m-running", vm="web-1", source="h1", target="h2", state=MoveState.MIGRATING)
        )
        store.save_record(record("m-done", vm="web-2", source="h1", target="h3", state=MoveState.SUCCEEDED))
        store.create_drain("h2", "ops", NOW)
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(context(config(url), store)))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_conforms(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode, subtests: pytest.Subtests
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:
        with subtests.test(operation=operation.label):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=WRITE)

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to get wrong in a request without inputs

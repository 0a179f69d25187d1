"""Every error the API answers carries a stable code: the codes are complete, snake_case, given a status,
listed in the OpenAPI document (an enum every error schema uses) and in its description."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from balancer.api.app import create_app
from balancer.api.errors import CODES, status_of
from balancer.errors import Conflict, ErrorCode, LeaseLost, NotFound, NotReady, RecordChanged, StoreError
from balancer.store import Store
from tests.api.harness import config, context


@pytest.fixture
def openapi(tmp_path: Path) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path}/balancer.db"
    with Store.open(url) as store:
        yield create_app(context(config(url), store)).openapi()


def test_every_code_has_a_status_and_a_meaning() -> None:
    assert set(CODES) == set(ErrorCode)
    for code, (status, meaning) in CODES.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value), code
        assert 400 <= status < 600 and meaning.endswith("."), (code, status, meaning)


def test_statuses_follow_the_kind_of_error() -> None:
    assert {c for c in ErrorCode if status_of(c) == 404} >= {
        c for c in ErrorCode if c.value.endswith("_not_found")
    }
    assert status_of(ErrorCode.INVALID_INPUT) == 422
    assert status_of(ErrorCode.NOT_LEADER) == 409
    assert (status_of(ErrorCode.STORE_UNAVAILABLE), status_of(ErrorCode.NO_SNAPSHOT)) == (503, 503)


def test_the_exceptions_carry_their_codes() -> None:
    assert StoreError("db down").code == ErrorCode.STORE_UNAVAILABLE
    assert NotFound("plan 9 does not exist", ErrorCode.PLAN_NOT_FOUND).code == ErrorCode.PLAN_NOT_FOUND
    assert Conflict("closed", ErrorCode.DRAIN_CLOSED).code == ErrorCode.DRAIN_CLOSED
    assert RecordChanged("moved on").code == ErrorCode.RECORD_CHANGED
    assert LeaseLost("term over").code == ErrorCode.NOT_LEADER
    assert NotReady("no collection yet").code == ErrorCode.NO_SNAPSHOT


def test_the_openapi_document_lists_every_code_in_the_error_schemas(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == [c.value for c in ErrorCode]
    for name in ("ErrorOut", "ValidationOut", "LeaderConflictOut"):
        assert schemas[name]["properties"]["code"]["$ref"] == "#/components/schemas/ErrorCode", name
        assert {"code", "detail"} <= set(schemas[name]["required"]), name
    assert "problems" in schemas["ValidationOut"]["required"]
    assert {"leader", "leader_url"} <= set(schemas["LeaderConflictOut"]["properties"])


def test_every_documented_error_response_has_a_code(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    seen = 0
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) < 400 or path == "/readyz":  # /readyz's 503 is its Readiness report
                    continue
                ref = response["content"]["application/json"]["schema"]["$ref"]
                schema = schemas[ref.rsplit("/", 1)[1]]
                assert "code" in schema["required"], (method, path, status)
                seen += 1
    assert seen > 50


def test_the_description_lists_every_code_with_its_status(openapi: dict[str, Any]) -> None:
    text = openapi["info"]["description"]
    for code, (status, _meaning) in CODES.items():
        assert f"| `{code.value}` | {status} |" in text, code

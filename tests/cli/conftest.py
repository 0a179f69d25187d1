"""Fixtures of the CLI tests that talk to the API: a store, an ApiContext over it (the harness's
stand-in service) and a real uvicorn server on 127.0.0.1 serving it; ``cfg_file`` is a config.yaml
whose api.listen names that server, so the CLI finds it without --api."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer.api.app import ApiContext, create_app
from balancer.store import Store
from tests.api.harness import config, context, serving, write_config


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path}/balancer.db", now=0.0) as s:
        yield s


@pytest.fixture
def ctx(store: Store, tmp_path: Path) -> ApiContext:
    return context(config(f"sqlite:///{tmp_path}/balancer.db"), store, clock=time.time)


@pytest.fixture
def url(ctx: ApiContext) -> Iterator[str]:
    with serving(create_app(ctx)) as u:
        yield u


@pytest.fixture
def cfg_file(tmp_path: Path, url: str) -> Path:
    """A config whose api.listen is the test server: the CLI finds it without --api."""
    return write_config(
        tmp_path / "config.yaml", f"sqlite:///{tmp_path}/balancer.db", listen=url[len("http://") :]
    )

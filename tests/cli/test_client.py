"""How the CLI reaches the balancer (cli/client.py): over HTTP to a real API server on loopback, or with
``--local`` to the store. Every failure becomes a ClientError with an exit code and, where the service
(or the store) named one, its stable error code; the leader a follower names is followed once."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from balancer.api.app import ApiContext, create_app
from balancer.api.schemas import DrainCreate, MigrationCreate
from balancer.cli.client import ApiBackend, ClientError, StoreBackend, api_url, connect, default_token
from balancer.config import parse
from balancer.errors import ErrorCode
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import MoveState
from balancer.store import Store
from tests.api.harness import READ_TOKEN, WRITE_TOKEN, config, context, free_port, plan, serving, stand_in
from tests.leader import fence_of
from tests.store.builders import record


def failure(call: object) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call()  # type: ignore[operator]
    return raised.value


def test_errors_carry_the_services_code_and_an_exit_code_by_kind(url: str, store: Store) -> None:
    api = ApiBackend(url, WRITE_TOKEN)
    gone = failure(lambda: api.cancel_drain("h1"))
    assert (gone.exit_code, gone.error) == (EXIT_INPUT, ErrorCode.NOT_DRAINED)
    assert str(gone).endswith("[HTTP 404]")
    missing = failure(lambda: api.plan(42))
    assert (missing.exit_code, missing.error, str(missing)) == (
        EXIT_INPUT,
        ErrorCode.PLAN_NOT_FOUND,
        "plan 42 does not exist [HTTP 404]",
    )
    pid = store.save_plan(plan(), "recommend", time.time(), fence=fence_of(store)).id
    api.decide_plan(pid, False)
    closed = failure(lambda: api.decide_plan(pid, True))
    assert (closed.exit_code, closed.error) == (EXIT_FAILED, ErrorCode.PLAN_CLOSED)
    invalid = failure(lambda: api.create_drain(DrainCreate(host="h9")))
    assert (invalid.exit_code, invalid.error) == (EXIT_INPUT, ErrorCode.INVALID_INPUT)
    assert str(invalid) == "host: 'h9' is not a configured host; known: h1, h2, h3 [HTTP 422]"
    assert isinstance(invalid.body, dict) and invalid.body["problems"][0]["field"] == "host"
    api.close()


def test_auth_failures_name_the_code_and_hint_at_the_token(url: str) -> None:
    anonymous = failure(lambda: ApiBackend(url, None).drains(5))
    assert (anonymous.exit_code, anonymous.error) == (EXIT_INPUT, ErrorCode.TOKEN_REQUIRED)
    assert "(pass --token or set $BALANCER_TOKEN) [HTTP 401]" in str(anonymous)
    reader = failure(lambda: ApiBackend(url, READ_TOKEN).create_drain(DrainCreate(host="h1")))
    assert (reader.exit_code, reader.error) == (EXIT_INPUT, ErrorCode.WRITE_TOKEN_REQUIRED)
    wrong = failure(lambda: ApiBackend(url, "not-a-token-at-all-000").drains(5))
    assert wrong.error == ErrorCode.TOKEN_INVALID


def test_a_service_without_a_collection_or_a_store_is_unreachable_for_the_cli(
    url: str, ctx: ApiContext, tmp_path: Path
) -> None:
    stand_in(ctx).set(snapshot=None)
    early = failure(lambda: ApiBackend(url, WRITE_TOKEN).preview([]))
    assert (early.exit_code, early.error) == (EXIT_UNREACHABLE, ErrorCode.NO_SNAPSHOT)


def test_no_server_a_silent_server_and_a_foreign_server_are_told_apart(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = failure(lambda: ApiBackend(nobody, WRITE_TOKEN).drains(5))
    assert (refused.exit_code, refused.error) == (EXIT_UNREACHABLE, None)
    assert f"no service answers at {nobody}" in str(refused) and "--local" in str(refused)

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        where = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = failure(lambda: ApiBackend(where, WRITE_TOKEN, timeout=0.5).drains(5))
    assert (slow.exit_code, str(slow)) == (
        EXIT_UNREACHABLE,
        f"the service at {where} did not answer within 0.5 s",
    )

    foreign = FastAPI()

    @foreign.get("/v1/drains")
    def _drains() -> dict[str, str]:
        return {"hello": "world"}

    with serving(foreign) as other:
        odd = failure(lambda: ApiBackend(other, WRITE_TOKEN).drains(5))
    assert odd.exit_code == EXIT_FAILED and "sent an unexpected answer" in str(odd)


def test_an_abort_on_a_follower_is_followed_to_the_leader_it_names(tmp_path: Path) -> None:
    leader_url = f"sqlite:///{tmp_path}/leader.db"
    follower_url = f"sqlite:///{tmp_path}/follower.db"
    with Store.open(leader_url) as leader_store, Store.open(follower_url) as follower_store:
        leader_ctx = context(config(leader_url), leader_store, clock=time.time)
        follower_ctx = context(config(follower_url), follower_store, clock=time.time)
        for s in (leader_store, follower_store):
            s.save_record(record("m-run", vm="web-1", source="h1", target="h2", state=MoveState.MIGRATING))
        stand_in(leader_ctx).aborts.running.add("m-run")
        stand_in(follower_ctx).set(leader=False, epoch=None)
        with serving(create_app(leader_ctx)) as leader, serving(create_app(follower_ctx)) as follower:
            assert follower_store.acquire_lease(f"node-a/1/x@{leader}", 60.0) is not None
            api = ApiBackend(follower, WRITE_TOKEN)
            out = api.abort("m-run")
            assert (out.id, api.where) == ("m-run", leader)  # answered by the leader, which it now talks to
            assert stand_in(leader_ctx).aborts.calls == ["m-run"]
            assert stand_in(follower_ctx).aborts.calls == ["m-run"]  # asked first, did not hold it
            api.close()


def test_a_migration_on_a_follower_with_no_leader_is_not_followed(url: str, ctx: ApiContext) -> None:
    stand_in(ctx).set(leader=False, epoch=None)
    refused = failure(lambda: ApiBackend(url, WRITE_TOKEN).migrate(MigrationCreate(vm="web-1", target="h2")))
    assert (refused.exit_code, refused.error) == (EXIT_FAILED, ErrorCode.NOT_LEADER)
    assert isinstance(refused.body, dict) and refused.body["leader_url"] is None


def test_local_errors_carry_the_same_codes_as_the_api(store: Store, tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path}/balancer.db")
    local = StoreBackend(cfg, "alice")
    gone = failure(lambda: local.cancel_drain("h1"))
    assert (gone.exit_code, gone.error) == (EXIT_INPUT, ErrorCode.NOT_DRAINED)
    unknown = failure(lambda: local.drain("h9"))
    assert (unknown.exit_code, unknown.error) == (EXIT_INPUT, ErrorCode.HOST_NOT_FOUND)
    bad = failure(lambda: local.create_drain(DrainCreate(host="h9")))
    assert (bad.exit_code, bad.error, str(bad)) == (
        EXIT_INPUT,
        ErrorCode.INVALID_INPUT,
        "host: 'h9' is not a configured host; known: h1, h2, h3",
    )
    pid = store.save_plan(plan(), "recommend", time.time(), fence=fence_of(store)).id
    store.release_lease("test-leader")  # --local acts only while nobody leads
    local.decide_plan(pid, False)
    closed = failure(lambda: local.decide_plan(pid, True))
    assert (closed.exit_code, closed.error) == (EXIT_FAILED, ErrorCode.PLAN_CLOSED)
    assert failure(lambda: local.abort("m1")).exit_code == EXIT_FAILED
    local.close()


def test_connect_picks_the_backend_and_the_local_operators_token(tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path}/b.db", listen="0.0.0.0:9100")
    assert api_url(cfg, None) == "http://127.0.0.1:9100"  # a wildcard listen means this machine
    assert api_url(cfg, "http://10.0.0.5:8787/") == "http://10.0.0.5:8787"
    assert api_url(None, None) == "http://127.0.0.1:8787"
    assert default_token(cfg) == WRITE_TOKEN  # the write token before the read one
    assert default_token(None) is None
    backend = connect(cfg, None, None)
    assert isinstance(backend, ApiBackend) and backend.where == "http://127.0.0.1:9100"
    backend.close()
    assert failure(lambda: connect(None, None, None, local=True)).exit_code == EXIT_INPUT
    no_store = failure(lambda: connect(cfg, None, None, local=True))
    assert no_store.exit_code == EXIT_UNREACHABLE and not (tmp_path / "b.db").exists()


def test_an_unreadable_token_file_is_bad_input_naming_it(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    cfg = parse(
        {
            "hosts": [{"name": "h1", "uri": "qemu+tcp://h1/system"}],
            "api": {"tokens": [{"name": "ops", "token_file": str(secret), "role": "write"}]},
        }
    )
    assert default_token(cfg) == "s" * 32
    secret.unlink()
    gone = failure(lambda: default_token(cfg))
    assert gone.exit_code == EXIT_INPUT and f"api token 'ops': {secret} cannot be read" in str(gone)


def test_the_services_view_comes_back_as_the_models_the_cli_draws(url: str, ctx: ApiContext) -> None:
    """The snapshot and a preview cross HTTP as JSON and come back equal to what the service holds."""
    api = ApiBackend(url, WRITE_TOKEN)
    live = stand_in(ctx).live().snapshot
    assert live is not None
    assert api.snapshot() == live
    assert [h.name for h in api.hosts()] == ["h1", "h2", "h3"]
    assert {v.name: v.host for v in api.vms()} == {v.name: v.host for v in live.vms}
    preview = api.preview(["h2"])
    assert preview == stand_in(ctx).preview({"h2"})  # the same plan, as the planner made it
    assert all(m.target != "h2" for m in preview.moves)
    queued = api.migrate(MigrationCreate(vm="web-1", target="h3", bandwidth_mib_s=9))
    assert (queued.vm, queued.source, queued.target, queued.state) == ("web-1", "h1", "h3", MoveState.QUEUED)
    ((request, actor),) = stand_in(ctx).migrations
    assert (request.bandwidth_mib_s, actor) == (9, "ops")  # the request as sent, by the token's name
    api.close()

"""Listings complete when piped and conventional: `-o table|wide|json` (``--json`` kept), nothing cut or
ellipsised, optional columns left out only on a narrow terminal, ids taken by a unique prefix."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from balancer.cli.ops_cmd import register
from balancer.cli.output import Column, Output, table
from balancer.model import MoveState
from balancer.store import Store
from balancer.store.records import DrainState
from tests.api.harness import WRITE_TOKEN
from tests.store.builders import record

app = typer.Typer()
register(app)
LONG_ID = "c30fe19a" + "0" * 24  # 32 characters, as the executor's ids


def run(cfg_file: Path, *args: str) -> Result:
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "80"}
    return CliRunner().invoke(app, [*args, "--config", str(cfg_file)], env=env)


def test_piped_drains_keep_every_state_whole_so_grep_finds_it(cfg_file: Path, store: Store) -> None:
    d, _ = store.create_drain("h1", "a-rather-long-requester-name@example.org", time.time() - 600)
    store.close_drain(d.id, DrainState.CANCELLED, "bob", time.time())
    store.create_drain("h2", "ops", time.time())
    r = run(cfg_file, "drains")
    assert r.exit_code == 0, r.output
    cancelled = [ln for ln in r.stdout.splitlines() if "cancelled" in ln]
    assert len(cancelled) == 1 and cancelled[0].split()[:3] == ["h1", str(d.id), "cancelled"]
    assert "a-rather-long-requester-name@example.org" in cancelled[0]  # piped: every column, in full
    assert "…" not in r.stdout and max(map(len, r.stdout.splitlines())) > 80


def test_piped_migrations_show_full_ids_and_wide_adds_columns(cfg_file: Path, store: Store) -> None:
    store.save_record(record(LONG_ID, vm="web-1", state=MoveState.SUCCEEDED))
    plain = run(cfg_file, "migrations")
    assert plain.stdout.splitlines()[1].split()[0] == LONG_ID
    assert plain.stdout.splitlines()[0].split()[0] == "ID" and "FINISHED" not in plain.stdout
    wide = run(cfg_file, "migrations", "-o", "wide")
    assert "FINISHED" in wide.stdout and "DOWNTIME" in wide.stdout and LONG_ID in wide.stdout


def test_json_is_the_apis_body_under_either_spelling(cfg_file: Path, store: Store, url: str) -> None:
    store.save_record(record(LONG_ID, vm="web-1", state=MoveState.SUCCEEDED))
    store.create_drain("h2", "ops", time.time())
    headers = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    for command, path in (("migrations", "/v1/migrations"), ("drains", "/v1/drains"), ("plans", "/v1/plans")):
        api = httpx.get(f"{url}{path}", params={"limit": 20}, headers=headers).json()
        assert json.loads(run(cfg_file, command, "-o", "json").stdout) == api, command
        assert json.loads(run(cfg_file, command, "--json").stdout) == api, command


def test_an_unknown_output_format_is_exit_2_naming_the_allowed_ones(cfg_file: Path) -> None:
    r = run(cfg_file, "drains", "-o", "yaml")
    assert r.exit_code == 2
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert "'yaml' is not one of 'table', 'wide', 'json'" in said


def test_ids_are_taken_by_a_unique_prefix(cfg_file: Path, store: Store) -> None:
    store.save_record(record(LONG_ID, vm="web-1", state=MoveState.SUCCEEDED))
    store.save_record(record("c30fe19b" + "1" * 24, vm="web-2", state=MoveState.SUCCEEDED))
    shown = run(cfg_file, "migrations", "show", "c30fe19a")
    assert shown.exit_code == 0 and shown.stdout.splitlines()[1].split()[0] == LONG_ID
    assert json.loads(run(cfg_file, "migrations", "show", "c30fe19a", "-o", "json").stdout)["id"] == LONG_ID
    r = run(cfg_file, "abort", "c30fe19a")  # resolved, then refused for what it is: finished
    assert r.exit_code == 1 and f"migration {LONG_ID} is already succeeded" in r.output
    r = run(cfg_file, "abort", "c30fe19")
    assert r.exit_code == 2, r.output
    assert f"matches 2 migrations: {LONG_ID}, c30fe19b{'1' * 24}; give more characters" in r.output
    r = run(cfg_file, "migrations", "show", "ffff")
    assert r.exit_code == 2 and "migration 'ffff' is not in the journal" in r.output


COLUMNS = (
    Column("ID"),
    Column("STATE"),
    Column("NOTE", drop=1),
    Column("SINCE", drop=2),
    Column("X", wide=True),
)
ROWS = [
    (
        "c30fe19a" + "0" * 24,
        "cancelled",
        "a note that is long",
        "2026-12-06 11:00",
        "x",
    )
]


def drawn(mode: Output, width: int | None) -> list[str]:
    out = io.StringIO()
    table(COLUMNS, ROWS, mode, out=out, width=width)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [40, 80])
def test_a_narrow_terminal_loses_optional_columns_never_text(width: int) -> None:
    lines = drawn(Output.TABLE, width)
    # at 80 the note fits once SINCE (the less useful one) is left out; at 40 neither fits
    assert re.split(r"\s{2,}", lines[0]) == (["ID", "STATE", "NOTE"] if width == 80 else ["ID", "STATE"])
    assert lines[1].split()[:2] == [ROWS[0][0], "cancelled"]  # id and state always, in full
    assert "…" not in "".join(lines)


def test_piped_or_wide_shows_every_column() -> None:
    assert re.split(r"\s{2,}", drawn(Output.TABLE, None)[0]) == ["ID", "STATE", "NOTE", "SINCE"]
    assert re.split(r"\s{2,}", drawn(Output.WIDE, 40)[0]) == ["ID", "STATE", "NOTE", "SINCE", "X"]

"""How listing commands print: ``-o table`` (default), ``-o wide`` (extra columns), ``-o json``.

What kubectl and virsh users expect. A table is never cut: no ellipsis, no truncated id or state.
Piped (stdout not a terminal), every column of the mode is printed in full at whatever width that
takes, so ``balancer drains | grep cancelled`` finds what it looks for. On a terminal narrower than
the table, ``-o table`` leaves out the columns marked optional, least useful first (``-o wide`` and
``-o json`` show them), and a line still too long wraps in the terminal rather than losing text.
``-o json`` prints the API's response bodies: the same field names as ``/v1/...``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO

import typer
from pydantic import BaseModel

from balancer.cli.common import print_json


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"


OutputOption = typer.Option(
    Output.TABLE,
    "--output",
    "-o",
    case_sensitive=False,
    help="table (fits a terminal by leaving out optional columns; never cuts text), wide (every "
    "column), json (the API's bodies).",
)
JsonOption = typer.Option(False, "--json", help="Same as -o json.")
GAP = "  "


def chosen(output: Output, as_json: bool) -> Output:
    """``--json`` is kept as the old spelling of ``-o json``."""
    return Output.JSON if as_json else output


def print_models(data: BaseModel | Sequence[BaseModel]) -> None:
    """``-o json``: the API's bodies, field names as in /v1/... (``mode="json"``: enums as values)."""
    if isinstance(data, BaseModel):
        print_json(data.model_dump(mode="json"))
    else:
        print_json([m.model_dump(mode="json") for m in data])


@dataclass(frozen=True)
class Column:
    """A table column. ``wide``: only with ``-o wide``. ``drop``: on a narrow terminal, ``-o table``
    leaves it out (higher first); 0 is essential (ids, names, states) and always shown."""

    header: str
    drop: int = 0
    wide: bool = False
    right: bool = False


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    mode: Output = Output.TABLE,
    *,
    empty: str = "",
    out: TextIO | None = None,
    width: int | None = None,
) -> None:
    """Print ``rows`` under ``columns`` as plain aligned text; ``empty`` instead when there are none.

    ``width`` is the terminal's (None: ask the terminal when stdout is one; piped, no limit).
    """
    out = out or sys.stdout
    if not rows and empty:
        print(empty, file=out)
        return
    keep = [i for i, c in enumerate(columns) if mode == Output.WIDE or not c.wide]
    cells = [[str(v) for v in row] for row in rows]
    if width is None and out.isatty():
        width = shutil.get_terminal_size().columns
    if width is not None and mode == Output.TABLE:
        left_out: list[int] = []
        for i in sorted((i for i in keep if columns[i].drop), key=lambda i: -columns[i].drop):
            if _line_width(columns, cells, keep) <= width:
                break
            keep.remove(i)
            left_out.append(i)
        for i in reversed(left_out[:-1]):  # one long column may have made room for shorter ones
            if _line_width(columns, cells, sorted([*keep, i])) <= width:
                keep = sorted([*keep, i])
    sizes = {i: max([len(columns[i].header), *(len(r[i]) for r in cells)]) for i in keep}
    for line in [[c.header for c in columns], *cells]:
        parts = [line[i].rjust(sizes[i]) if columns[i].right else line[i].ljust(sizes[i]) for i in keep]
        print(GAP.join(parts).rstrip(), file=out)


def _line_width(columns: Sequence[Column], cells: Sequence[Sequence[str]], keep: Sequence[int]) -> int:
    sizes = [max([len(columns[i].header), *(len(r[i]) for r in cells)]) for i in keep]
    return sum(sizes) + len(GAP) * (len(sizes) - 1)

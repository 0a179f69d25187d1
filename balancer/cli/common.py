"""Shared bits of the command line: error output, config loading, JSON output.

Exit codes are named in balancer.exit_codes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from balancer.config import Config, load
from balancer.exit_codes import EXIT_INPUT

CONFIG_ENV = "BALANCER_CONFIG"

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help="config.yaml to use (default: $BALANCER_CONFIG, else /etc/balancer/config.yaml).",
    show_default=False,
)


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print a one-line (or few-line) error to stderr and exit; never a traceback."""
    print(message, file=sys.stderr)
    raise SystemExit(code)


def config_path(path: Path | None) -> Path:
    if path is not None:
        return path
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path("/etc/balancer/config.yaml")


def load_config(path: Path | None, *, for_service: bool = False) -> Config:
    """Load the config or exit 2 with one line per problem (ConfigError is rendered by cli.main).

    ``for_service`` (`run`, `config check`): also refuse what only the service needs, e.g. no hosts.
    """
    return load(config_path(path), for_service=for_service)


LAB_EXTRA = "balancer[lab]"


def lab_missing(exc: ModuleNotFoundError) -> bool:
    """The ImportError says the lab is not installed (the ``lab`` extra), not that it is broken."""
    return exc.name is not None and (exc.name == "balancer.lab" or exc.name.startswith("balancer.lab."))


def fail_without_lab(command: str) -> NoReturn:
    """`balancer lab|demo` on an install without the extra: say which one brings it; exit 2."""
    fail(
        f"balancer {command}: the local lab is not installed (a production install leaves it out); "
        f"install the extra: pip install '{LAB_EXTRA}'",
        EXIT_INPUT,
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))

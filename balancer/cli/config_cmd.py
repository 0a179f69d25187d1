"""`balancer config check [FILE]`: validate a config file and print the effective config."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from balancer.cli.common import config_path, load_config, print_json

app = typer.Typer(help="Validate and show configuration.", no_args_is_help=True)


@app.command("check")
def check(
    file: Path | None = typer.Argument(None, help="config.yaml to check (default: $BALANCER_CONFIG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the effective config as JSON."),
) -> None:
    """Validate FILE as `balancer run` would; print every problem (exit 2) or the effective config
    with all defaults (tokens and the database password shown as ***)."""
    cfg = load_config(file, for_service=True)
    if as_json:
        print_json(cfg.dump())
        return
    print(f"# {config_path(file)}: valid; effective configuration with defaults (secrets shown as ***):")
    print(yaml.safe_dump(cfg.dump(), sort_keys=False), end="")


@app.command("example")
def example() -> None:
    """Print an annotated config.yaml with every key and its default."""
    from balancer.config_example import render

    print(render(), end="")

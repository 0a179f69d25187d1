"""`balancer run`: the service (periodic loop, executor, HTTP API, /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from balancer.cli.common import ConfigOption, config_path, load_config


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: Path | None = ConfigOption,
        log_format: str | None = typer.Option(
            None, "--log-format", help="text or json (default: logging.format in the config)."
        ),
        abort_on_exit: bool = typer.Option(
            False,
            "--abort-on-exit",
            help="Abort running migrations on SIGTERM instead of leaving them to finish.",
        ),
    ) -> None:
        """Run the balancer: collect, plan and act every interval; serve the API and /metrics."""
        from balancer.cli.common import fail
        from balancer.daemon import serve
        from balancer.exit_codes import EXIT_INPUT
        from balancer.service import logs

        cfg = load_config(config, for_service=True)
        if log_format not in (None, "text", "json"):
            fail(f"--log-format: {log_format!r} is not one of 'text' or 'json'", EXIT_INPUT)
        fmt: Literal["text", "json"] = log_format or cfg.logging.format  # type: ignore[assignment]
        logs.setup(fmt, cfg.logging.level)
        path = config_path(config)
        raise SystemExit(serve(cfg, abort_on_exit=abort_on_exit, config_path=path, log_format=log_format))

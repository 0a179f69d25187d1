"""Command line: `balancer ...`. One module per command group; this one wires them and maps errors
to exit codes (balancer.exit_codes: 0 success, 1 the operation ran and failed, 2 bad input, 3 a host,
the service or the store could not be reached, 130 Ctrl-C).
"""

from __future__ import annotations

import sys

import typer

from balancer import __version__
from balancer.cli.common import fail, fail_without_lab, lab_missing
from balancer.errors import BalancerError, ConfigError, SnapshotError
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED

__all__ = ["app", "main"]

app = typer.Typer(
    name="balancer",
    help="Keeps a libvirt/KVM cluster balanced and drains hosts by live block migration.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"balancer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Keeps a libvirt/KVM cluster balanced and drains hosts by live block migration."""


def _register() -> None:
    if app.registered_commands:  # once per process (main() may run more than once in one, e.g. tests)
        return
    # Imported here so `import balancer.cli` stays cheap and a broken optional group
    # (e.g. the lab on a machine without iproute2) does not take the others down.
    from balancer.cli import config_cmd, demo_cmd, inspect_cmd, migrate_cmd, ops_cmd, run_cmd

    app.add_typer(config_cmd.app, name="config")
    inspect_cmd.register(app)
    run_cmd.register(app)
    demo_cmd.register(app)
    migrate_cmd.register(app)
    ops_cmd.register(app)

    try:
        from balancer.lab.cli import app as lab_app
    except ModuleNotFoundError as exc:
        if not lab_missing(exc):
            raise
        app.command("lab", context_settings=_ANY_ARGS)(_lab_not_installed)
        return
    app.add_typer(lab_app, name="lab", help="A local cluster of libvirtd hosts with real guests.")


_ANY_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _lab_not_installed(
    args: list[str] | None = typer.Argument(None, hidden=True),
) -> None:
    """A local cluster of libvirtd hosts with real guests (not installed: pip install 'balancer\\[lab]')."""
    fail_without_lab("lab")


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except (ConfigError, SnapshotError) as exc:
        fail(exc.render() if isinstance(exc, ConfigError) else f"error: {exc}", EXIT_INPUT)
    except BalancerError as exc:
        fail(f"error: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)

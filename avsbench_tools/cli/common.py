"""What every command shares: the closing `next:` line and the short failure listing."""

from __future__ import annotations

from collections.abc import Sequence

import typer

FMT_HELP = "avsbench-s4, avsbench-ms3, avss or ref-avs."


def say_next(command: str, quiet: bool = False) -> None:
    """End a stage with the command to run next (`next: avs-tools ...`), unless --quiet."""
    if not quiet:
        typer.echo(f"next: {command}")


def report_failures(failures: Sequence[tuple[str, str]], workspace, shown: int = 5) -> None:
    """Print `item: reason` for the first few failures, then where to see the rest (stderr)."""
    for item, reason in failures[:shown]:
        typer.echo(f"  failed: {item}: {reason}", err=True)
    if len(failures) > shown:
        typer.echo(f"  and {len(failures) - shown} more: avs-tools status {workspace} --failures", err=True)

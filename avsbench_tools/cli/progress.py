"""Rich progress bars for the CLI (library functions only take a callback), and its notes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _Bars:
    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.started = False
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        if self.progress is None:
            return
        if not self.started:  # drawn from the first report on: an error before any work prints only its line
            self.progress.start()
            self.started = True
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, info=info)
        self.progress.update(self.tasks[stage], completed=done, total=total, info=info)


@contextlib.contextmanager
def bars(quiet: bool = False) -> Iterator[_Bars]:
    """Yields a callback `cb(stage, done, total, info)`; draws one bar per stage unless quiet."""
    if quiet:
        yield _Bars(None)
        return
    prog = Progress(TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)
    cb = _Bars(prog)
    try:
        yield cb
    finally:
        if cb.started:
            prog.stop()


def note(text: str) -> None:
    """One line on stderr for something the user should know but that does not stop the command."""
    import typer

    typer.echo(f"avs-tools: note: {text}", err=True)


def explicit(ctx, name: str) -> bool:
    """True if the user gave option `name` (on the command line or by its environment variable)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")

"""Rich progress bars for the CLI: library functions only take a callback `progress(stage, done, total, info)`."""

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
    """The callback handed to a stage: one bar per stage name, started on the first report."""

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

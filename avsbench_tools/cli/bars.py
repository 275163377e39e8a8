"""Rich progress bars for the CLI: library functions only take a callback `progress(stage, done, total, info)`."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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

#: Test-only: a stage run whose environment names a file here pauses in its progress report (on the main
#: thread, from the report whose `done` reaches AVS_TOOLS_TEST_HOLD_AT, default 0) for as long as that
#: file exists, after writing `<file>.held`. Tests hold a stage there to Ctrl-C it or to try a second
#: run against it, without hoping that the machine is slow enough (Ctrl-C still stops it at once).
#: AVS_TOOLS_TEST_HOLD_MATCH, when set, is a regular expression the report's "<stage> <info>" must contain
#: (e.g. "training epoch 2/": a run held in its second epoch, after the first one's checkpoint).
HOLD_ENV, HOLD_AT_ENV, HOLD_MATCH_ENV = "AVS_TOOLS_TEST_HOLD", "AVS_TOOLS_TEST_HOLD_AT", "AVS_TOOLS_TEST_HOLD_MATCH"


def _test_hold(done: int, what: str = "") -> None:
    hold = os.environ.get(HOLD_ENV)
    if not hold or done < int(os.environ.get(HOLD_AT_ENV) or 0):
        return
    if os.environ.get(HOLD_MATCH_ENV):
        import re

        if not re.search(os.environ[HOLD_MATCH_ENV], what):
            return
    if threading.current_thread() is not threading.main_thread():
        return
    path = Path(hold)
    if path.exists():
        path.with_name(path.name + ".held").write_text(str(os.getpid()))
        while path.exists():
            time.sleep(0.02)


class _Bars:
    """The callback handed to a stage: one bar per stage name, started on the first report."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.started = False
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        _test_hold(done, f"{stage} {info}")
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

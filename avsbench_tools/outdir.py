"""The one helper for every command that writes a folder as a whole (runs, predictions, reports).

`prepare_output_dir(OUT, kind=..., force=...)` checks OUT (fsutil.check_output_dir: a new or empty
folder, or an earlier output of the same kind) and returns an `OutputDir`: the folder to write in and,
when --force replaces an earlier output, the atomic swap that puts the new one in place only once it is
complete (Ctrl-C, an error or kill -9 before that leave the earlier output whole).

--force replaces only what avs-tools wrote: every command records, before writing them, the paths it
writes in its folder (`claim`, the `.avs-tools-files` list); a folder holding anything else (a user's
NOTES.txt, a data folder) is refused in one line naming it. Reading that record (`read_claims`,
`foreign_entry`) and the atomic exchange (`exchange_folders`) live in fsutil, which this module builds on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import (
    CLAIMS,
    MARKER,
    TMP_PREFIX,
    check_output_dir,
    exchange_folders,
    foreign_entry,
    read_claims,
    read_marker,
    write_marker,
)

_claimed: dict[Path, set[str]] = {}


def claim(folder: Path, *rels: str | Path) -> None:
    """Record, before writing them, the paths (relative to `folder`) a command writes in its output folder.

    `--force` later replaces the folder only when everything in it is recorded here (or is the marker, a
    temporary, or a marked folder of its own): a file someone else put there is never deleted. A path
    ending in '/' claims a whole folder the command fills (plots, overlays)."""
    folder = Path(folder)
    key = folder.absolute()
    seen = _claimed.setdefault(key, set())
    new = [r for r in (Path(x).as_posix() + ("/" if str(x).endswith("/") else "") for x in rels) if r not in seen]
    if not new:
        return
    if not seen:
        known = read_claims(folder)
        if known is None:  # a folder of an older avs-tools (no record at all): a partial record would mislead
            return
        seen.update(known)
        new = [r for r in new if r not in seen]
        if not new:
            return
    with open(folder / CLAIMS, "a", encoding="utf-8") as fh:
        fh.write("".join(f"{r}\n" for r in new))
    seen.update(new)


@contextlib.contextmanager
def hold_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM turned into one) until the block is done, then raise it: for the few
    milliseconds that put a finished output in place. Outside the main thread it does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[tuple[int, object]] = []
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if callable(old):  # only signals that would raise in Python (not SIG_DFL / SIG_IGN)
            saved[sig] = old
            signal.signal(sig, lambda signum, frame: got.append((signum, frame)))
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
        if got:
            signum, frame = got[0]
            saved[signum](signum, frame)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(out: Path, kind: str) -> None:
    """Staging folders of `out` left by a killed run (.tmp-new-PID-NAME whose PID is gone, our marker)."""
    for p in out.parent.glob(f"{TMP_PREFIX}new-*-{out.name}"):
        pid = p.name[len(TMP_PREFIX) + 4:].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and (read_marker(p) or {}).get("kind") == kind:
            shutil.rmtree(p, ignore_errors=True)


class OutputDir:
    """Where a command writes its output folder (see `prepare_output_dir`).

    `work` is the folder to write in: OUT itself (new, empty, or continued), or, when --force replaces an
    earlier output, a staging folder beside it that `commit` swaps in atomically: until then (Ctrl-C, an
    error, kill -9) the earlier output stays whole. As a context manager: commit on success, else drop the
    staging folder."""

    def __init__(self, final: Path, work: Path, kind: str, replacing: bool, created: bool = False):
        self.final, self.work, self.kind, self.replacing = final, work, kind, replacing
        self.created = created  # OUT did not exist: `abort` before anything was written removes it again

    def claim(self, *rels: str | Path) -> None:
        claim(self.work, *rels)

    def commit(self) -> Path:
        if not self.replacing or not self.work.exists():
            return self.final
        with hold_interrupts():
            if exchange_folders(self.work, self.final):
                old = self.work  # the earlier output now lies at the staging name
            else:
                old = self.final.with_name(f"{TMP_PREFIX}old-{os.getpid()}-{self.final.name}")
                os.replace(self.final, old)
                os.replace(self.work, self.final)
            _claimed.pop(self.work.absolute(), None)
            _claimed.pop(self.final.absolute(), None)
            self.replacing = False
            self.work = self.final
        shutil.rmtree(old, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        """Drop the staging folder (the earlier output stays); a folder this call created and nothing was
        written to yet is removed."""
        if self.replacing:
            _claimed.pop(self.work.absolute(), None)
            shutil.rmtree(self.work, ignore_errors=True)
        elif self.created and self.work.is_dir() and {p.name for p in self.work.iterdir()} <= {MARKER, CLAIMS}:
            _claimed.pop(self.work.absolute(), None)
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def replaced_interrupt(out: Path, what: str, exc: BaseException | None = None):
    """The Interrupted of a Ctrl-C during a --force that was replacing OUT: the new output was dropped and the
    earlier one is as it was (not "finished work is kept": nothing of the new one is)."""
    from avsbench_tools.errors import Interrupted

    err = Interrupted(getattr(exc, "done", 0), getattr(exc, "left", 0))
    err.args = (f"interrupted: the new {what} was dropped; the earlier {what} in {out} is as it was (run the same "
                "command to start over)",)
    return err


def prepare_output_dir(out: Path, *, kind: str, force: bool, keep: bool = False, protected: Iterable[Path] = (),
                       what: str = "--out", **marker_info) -> OutputDir:
    """The one check-and-open of a folder a command writes as a whole (runs, predictions, reports).

    Accepted, in one line naming what is in the way otherwise: a new folder under a writable parent or an
    empty one (written in place); with `keep`, an earlier output of the same `kind` that the caller
    decided to continue (written in place); with `force`, an earlier output of the same `kind` that holds
    nothing avs-tools did not write (`foreign_entry`): the new output is written beside it and swapped in
    when complete. Never the current folder, a `protected` path or a folder holding one, a workspace."""
    res = check_output_dir(out, kind=kind, force=force or keep, protected=protected, what=what, check_record=False)
    out = Path(out)
    _remove_stale_staging(res, kind)
    if res.is_dir() and any(res.iterdir()):
        if keep:
            return OutputDir(res, res, kind, False)
        if read_claims(res) is None:
            raise UsageError(f"{what} {out}: was written by an older avs-tools that did not record the files it "
                             "wrote, so --force cannot tell them from yours; delete it yourself if nothing of yours "
                             "is in it, or name a new folder")
        bad = foreign_entry(res)
        if bad is not None:
            raise UsageError(f"{what} {out}: holds {bad}, which avs-tools did not write; --force replaces only a "
                             f"folder this command wrote and nothing else (move {bad} away or name a new folder)")
        work = res.with_name(f"{TMP_PREFIX}new-{os.getpid()}-{res.name}")
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        _start_record(work, kind, marker_info)
        return OutputDir(res, work, kind, True)
    created = not res.exists()
    res.mkdir(exist_ok=True)
    if read_marker(res) is None:
        _start_record(res, kind, marker_info)
    return OutputDir(res, res, kind, False, created)


def _start_record(folder: Path, kind: str, marker_info: dict) -> None:
    """A new output folder: its marker and an empty record of what the command writes in it."""
    _claimed.pop(folder.absolute(), None)
    (folder / CLAIMS).write_text("", encoding="utf-8")
    write_marker(folder, kind, **marker_info)

"""The release folder export writes: what it must never replace, its manifest, and Ctrl-C while writing it.

OUT is checked before any work (`fsutil.check_output_dir`): it must be a new folder, an empty one,
or, with --force, a release avs-tools wrote before (its `.avs-tools-output` marker, listed in
SHA256SUMS like every other file); never the workspace, a folder holding it, a collected source or
anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from avsbench_tools.fsutil import MARKER
from avsbench_tools.workspace import Workspace

CARD = "DATASET_CARD.md"
MANIFEST = "SHA256SUMS"
KIND = "release"  # the kind in the marker of a folder export wrote


def manifest(root: Path) -> str:
    """SHA256SUMS text of every file under root (sorted walk), itself left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out.append(f"{h.hexdigest()}  {rel}")
    return "\n".join(out) + "\n"


def protected_paths(ws: Workspace) -> list[Path]:
    """What an export must never replace: the workspace, its sources/ and every collected source
    (a local file, and the --local folder it came from)."""
    out = [ws.root, ws.path("sources")]
    for s in ws.catalog.sources():
        if not s.path:
            continue
        p = Path(s.path)
        p = p if p.is_absolute() else ws.root / p
        out.append(p)
        if s.kind == "local" and s.title and not Path(s.title).is_absolute():
            rel = Path(s.title).parts
            if rel and p.parts[-len(rel):] == rel and len(p.parts) > len(rel):
                out.append(Path(*p.parts[: -len(rel)]))
    return out


def _listed(folder: Path) -> set[str] | None:
    try:
        text = (Path(folder) / MANIFEST).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    return {line.split("  ", 1)[1] for line in text.splitlines() if "  " in line}


def foreign_file(folder: Path) -> str | None:
    """The first file in an earlier release that its SHA256SUMS does not list (someone put it there),
    or SHA256SUMS itself when it is missing; None when every file is one export wrote."""
    folder = Path(folder)
    listed = _listed(folder)
    if listed is None:
        return MANIFEST
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            rel = (Path(dirpath) / f).relative_to(folder).as_posix()
            if rel not in (MANIFEST, MARKER) and rel not in listed:  # a legacy release gets its marker late
                return rel
    return None


def is_legacy_release(folder: Path) -> bool:
    """A release exported before releases carried the marker: its card says avs-tools made it and its
    SHA256SUMS lists every file it holds."""
    try:
        card = (Path(folder) / CARD).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "Made by avs-tools from workspace" in card and foreign_file(folder) is None


class Guard:
    def __init__(self):
        self.pending = False  # a Ctrl-C / SIGTERM arrived
        self.deferring = False  # the release is complete and being put in place: finish that first


@contextlib.contextmanager
def interrupts() -> Iterator[Guard]:
    """Ctrl-C (or SIGTERM) raises KeyboardInterrupt once; a second one cannot interrupt the clean-up,
    and one that arrives while the finished release is put in place waits for it."""
    g = Guard()
    if threading.current_thread() is not threading.main_thread():
        yield g
        return

    def handler(signum, frame):
        if g.pending or g.deferring:
            g.pending = True
            return
        g.pending = True
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield g
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)

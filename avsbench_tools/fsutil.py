"""Crash-safe, owner-safe file writing.

- Everything finished is written to a temporary name, then renamed (`atomic_*`).
- Files follow the user's umask (0644/0755 under umask 022), unlike `tempfile.mkstemp`'s 0600.
- A folder the tool writes as a whole (a release, a synthetic world, a report folder) carries a
  marker file, `.avs-tools-output`; `--force` replaces a folder only when it carries the marker of
  the same kind and holds no workspace or collected source (`check_output_dir`). Nothing else is
  ever deleted or overwritten. Commands that write a folder open it through `outdir.prepare_output_dir`
  (what they wrote is recorded; --force swaps a complete new output in atomically).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from avsbench_tools.errors import UsageError

TMP_PREFIX = ".tmp-"
MARKER = ".avs-tools-output"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


def file_mode() -> int:
    """The mode a plain `open(path, 'w')` would give a new file under the user's umask."""
    return 0o666 & ~UMASK


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a temporary file beside `path` (mode 0600 from its first byte), then rename it over `path`;
    the file gets `mode`, by default the user's umask's (`file_mode`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read or write (0600 from its first byte, whatever the umask), atomically:
    tokens, passwords."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=0o600)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- folders the tool owns ----------------------------------------------------------------------

def write_marker(folder: Path, kind: str, **info) -> None:
    """Mark `folder` as written by avs-tools (`kind`: release, synth-world, report, ...)."""
    from avsbench_tools import __version__

    atomic_write_text(Path(folder) / MARKER, json.dumps(
        {"kind": kind, "tool": "avs-tools", "version": __version__,
         "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **info}, indent=1) + "\n")


def read_marker(folder: Path) -> dict | None:
    p = Path(folder) / MARKER
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("tool") == "avs-tools" else None


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _contains_workspace(folder: Path, limit: int = 20000) -> Path | None:
    """A workspace (catalog.sqlite) anywhere below folder, or None. Bounded walk."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        if "catalog.sqlite" in filenames:
            return Path(dirpath)
        n += len(filenames) + len(dirnames)
        if n > limit:
            break
    return None


def _check_parent(out: Path, parent: Path, what: str) -> None:
    """The folder that will hold `out` exists, is a folder, and a new entry can be made in it."""
    if not parent.exists():
        raise UsageError(f"{what} {out}: folder {out.parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{what} {out}: {out.parent} is not a folder")
    probe = parent / f"{TMP_PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise UsageError(f"{what} {out}: cannot write in {out.parent} ({exc.strerror or exc})") from None


def check_output_dir(out: Path, *, kind: str, force: bool, protected: Iterable[Path] = (),
                     what: str = "OUT", check_record: bool = True) -> Path:
    """Refuse, with one line naming what is in the way, any output folder the tool must not write.

    Accepted: a new folder under an existing writable parent; an existing empty folder; with
    --force, a folder whose marker says avs-tools wrote it as the same `kind`, that holds none
    of the `protected` paths (the workspace, collected sources) and no workspace, and (with
    `check_record`) nothing its record of its files (.avs-tools-files, or a release's SHA256SUMS)
    does not list. Returns the resolved path.
    """
    out = Path(out)
    if str(out).strip() in ("", ".", "..") or out.name in ("", ".", ".."):
        raise UsageError(f"{what} {str(out) or repr('')!s}: name a new folder, not '{out}'")
    res = out.resolve()
    cwd = Path.cwd().resolve()
    if res == cwd or _is_within(cwd, res):
        raise UsageError(f"{what} {out}: is the current folder or contains it; name a new folder")
    if res == Path(res.anchor):
        raise UsageError(f"{what} {out}: is the file-system root")
    for p in protected:
        if p is None:
            continue
        pr = Path(p).resolve()
        if res == pr or _is_within(pr, res):
            raise UsageError(f"{what} {out}: holds {p}, which avs-tools must not replace; name a new folder")
    if out.exists() or out.is_symlink():
        if out.is_symlink():
            raise UsageError(f"{what} {out}: is a symbolic link; name a new folder")
        if not out.is_dir():
            raise UsageError(f"{what} {out}: exists and is not a folder")
        try:
            entries = list(out.iterdir())
        except OSError as exc:
            raise UsageError(f"{what} {out}: cannot be read ({exc.strerror})") from None
        if entries:
            marker = read_marker(out)
            if marker is None:
                raise UsageError(f"{what} {out}: exists and holds files avs-tools did not write "
                                 f"(no {MARKER} marker); name a new folder")
            if marker.get("kind") != kind:
                raise UsageError(f"{what} {out}: holds an avs-tools {marker.get('kind')}, not a {kind}; "
                                 "name a new folder")
            ws = _contains_workspace(out)
            if ws is not None:
                raise UsageError(f"{what} {out}: holds a workspace ({ws}); name a new folder")
            if not force:
                raise UsageError(f"{what} {out}: exists (an earlier avs-tools {kind}; pass --force to replace it)")
            bad = _not_written_by_us(out) if check_record else None
            if bad is not None:
                raise UsageError(f"{what} {out}: holds {bad}, which avs-tools did not write there (not in the "
                                 f"folder's record of its files, {_record_name(out)}); --force replaces only what "
                                 f"avs-tools wrote: move {bad} out or name a new folder")
    _check_parent(out, res.parent, what)
    return res


CLAIMS = ".avs-tools-files"  # what the command wrote in its folder: one relative path a line, appended first
MANIFEST = "SHA256SUMS"  # the checksum list a release folder (export, publish) holds of every file in it


def read_claims(folder: Path) -> set[str] | None:
    """The paths a command recorded in its folder's `.avs-tools-files` (outdir.claim), or None without one."""
    try:
        text = (Path(folder) / CLAIMS).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    return {line for line in text.splitlines() if line}


def foreign_entry(folder: Path) -> str | None:
    """The first thing in an avs-tools output folder that avs-tools did not write (a path relative to
    it), or None. A sub-folder carrying its own marker is judged by its own record; temporaries
    (.tmp-*) are ours. A folder without a record (an older avs-tools) holds nothing known: its first
    entry is returned."""
    folder = Path(folder)
    claims = read_claims(folder)
    if claims is None:
        for p in sorted(folder.iterdir()):
            if p.name != MARKER:
                return p.name
        return None
    trees = tuple(c for c in claims if c.endswith("/"))
    known = set()  # every claimed path and the folders on the way to it
    for c in claims:
        p = Path(c.rstrip("/"))
        known.add(p.as_posix())
        known.update(a.as_posix() for a in p.parents)
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        rel_dir = here.relative_to(folder).as_posix()
        empty = not dirnames and not filenames
        if rel_dir != "." and rel_dir.startswith(trees):
            dirnames[:] = []
            continue
        dirnames.sort()
        for d in list(dirnames):
            sub = here / d
            rel = sub.relative_to(folder).as_posix()
            if d.startswith(TMP_PREFIX) or f"{rel}/" in trees:
                dirnames.remove(d)
            elif read_marker(sub) is not None:
                dirnames.remove(d)
                inner = foreign_entry(sub)
                if inner is not None:
                    return f"{rel}/{inner}"
            elif sub.is_symlink():
                return rel
        for f in sorted(filenames):
            rel = (here / f).relative_to(folder).as_posix()
            if f.startswith(TMP_PREFIX) or (here == folder and f in (MARKER, CLAIMS)):
                continue
            if rel not in claims:
                return rel
        if rel_dir != "." and empty and rel_dir not in known:
            return rel_dir + "/"
    return None


def exchange_folders(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _record_name(folder: Path) -> str:
    return CLAIMS if (Path(folder) / CLAIMS).is_file() else MANIFEST


def _not_written_by_us(folder: Path) -> str | None:
    """The first file in an earlier output that its own record does not list: the `.avs-tools-files` of a
    command that records what it writes (outdir.claim), else the SHA256SUMS of a release; None when it
    has neither (the caller's own rule decides then, e.g. export's legacy releases)."""
    folder = Path(folder)
    if (folder / CLAIMS).is_file():
        return foreign_entry(folder)
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    listed = {line.split("  ", 1)[1] for line in text.splitlines() if "  " in line}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            rel = (Path(dirpath) / f).relative_to(folder).as_posix()
            if rel not in (MANIFEST, MARKER) and rel not in listed and not f.startswith(TMP_PREFIX):
                return rel
    return None


def check_output_file(path: Path, *, is_ours: bool | None = None, what: str = "--out") -> Path:
    """Refuse a file output that cannot be written or would overwrite a file the tool did not write.

    `is_ours`: whether an existing file at `path` was written by avs-tools (the caller knows how to
    recognise its own reports/images); None means 'do not overwrite an existing file'.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise UsageError(f"{what} {path}: name a file")
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder; name a file")
    if path.exists() and not is_ours:
        raise UsageError(f"{what} {path}: exists and was not written by avs-tools; name another file")
    _check_parent(path, path.resolve().parent, what)
    return path


@contextlib.contextmanager
def atomic_dir(path: Path, kind: str | None = None, **marker_info) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success mark it (when `kind`) and put it at `path`.

    An existing `path` is replaced only after `check_output_dir` accepted it (the caller's job): the
    two folders are exchanged in one atomic step (Linux renameat2; elsewhere the old one is renamed
    aside first) and the old one removed, so a crash at any moment leaves either the old folder or
    the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if kind:
            write_marker(tmp, kind, **marker_info)
        old = None
        if path.exists():
            if exchange_folders(tmp, path):  # one atomic step: OUT is never missing, even under kill -9
                return  # the earlier folder now lies at `tmp`, removed below
            old = path.with_name(f"{TMP_PREFIX}old-{os.getpid()}-{path.name}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(root: Path) -> int:
    """Delete temporaries left by a killed process (anything named .tmp-*) below root."""
    n = 0
    root = Path(root)
    if not root.exists():
        return 0
    for p in sorted(root.rglob(f"{TMP_PREFIX}*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        n += 1
    return n


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

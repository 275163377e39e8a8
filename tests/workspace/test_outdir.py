"""outdir.prepare_output_dir, the one helper of every command that writes a folder: what --force may replace
(only what the command recorded writing, nested outputs judged by their own record), the atomic swap, and
the staging folders a killed run leaves."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import write_marker
from avsbench_tools.outdir import foreign_entry, prepare_output_dir


def _write(d, rel: str, text: str = "x") -> None:
    d.claim(rel)
    p = d.work / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_force_replaces_only_what_the_command_recorded(tmp_path):
    out = tmp_path / "run"
    d = prepare_output_dir(out, kind="demo", force=False)
    assert d.work == out.resolve() and not d.replacing
    _write(d, "a.txt", "old")
    _write(d, "sub/b.txt")
    inner = prepare_output_dir(out / "preds", kind="inner", force=False)  # a nested output, its own record
    _write(inner, "m.png")
    assert foreign_entry(out) is None
    with pytest.raises(UsageError, match="pass --force"):
        prepare_output_dir(out, kind="demo", force=False)
    with pytest.raises(UsageError, match="holds an avs-tools demo, not a other"):
        prepare_output_dir(out, kind="other", force=True)
    for extra, named in (("NOTES.txt", "NOTES.txt"), ("sub/mine.txt", "sub/mine.txt"),
                         ("preds/mine.png", "preds/mine.png"), ("my-data/", "my-data/")):
        p = out / extra
        p.mkdir() if extra.endswith("/") else p.write_text("mine")
        with pytest.raises(UsageError, match=f"holds {named}, which avs-tools did not write"):
            prepare_output_dir(out, kind="demo", force=True)
        p.rmdir() if extra.endswith("/") else p.unlink()
    d = prepare_output_dir(out, kind="demo", force=True)
    assert d.replacing and d.work.parent == out.parent and d.work.name.startswith(".tmp-new-")
    _write(d, "a.txt", "new")
    assert (out / "a.txt").read_text() == "old"  # the earlier output is whole until the swap
    d.commit()
    assert (out / "a.txt").read_text() == "new" and not (out / "sub").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_aborted_replacement_leaves_the_earlier_output(tmp_path):
    out = tmp_path / "run"
    with prepare_output_dir(out, kind="demo", force=False) as d:
        _write(d, "a.txt", "old")
    with pytest.raises(KeyboardInterrupt), prepare_output_dir(out, kind="demo", force=True) as d:
        _write(d, "a.txt", "new")
        raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_killed_runs_staging_folder_is_removed_and_old_outputs_are_not_guessed(tmp_path):
    out = tmp_path / "run"
    with prepare_output_dir(out, kind="demo", force=False) as d:
        _write(d, "a.txt")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".tmp-new-{dead}-run"
    stale.mkdir()
    write_marker(stale, "demo")
    (tmp_path / f".tmp-new-{dead}-other").mkdir()  # not this output's: left alone
    prepare_output_dir(out, kind="demo", force=True).abort()
    assert not stale.exists() and (tmp_path / f".tmp-new-{dead}-other").exists()
    legacy = tmp_path / "legacy"  # marked, but written before outputs recorded their files
    legacy.mkdir()
    write_marker(legacy, "demo")
    (legacy / "best.pt").write_text("x")
    with pytest.raises(UsageError, match="older avs-tools that did not record"):
        prepare_output_dir(legacy, kind="demo", force=True)
    assert os.listdir(legacy)


def test_release_folders_are_judged_by_their_sha256sums(tmp_path):
    """Folders written whole through fsutil.atomic_dir (export, publish, unpublish) list every file in their
    SHA256SUMS: check_output_dir's --force refuses one holding anything else."""
    import hashlib

    from avsbench_tools.fsutil import check_output_dir

    out = tmp_path / "pub"
    (out / "data").mkdir(parents=True)
    write_marker(out, "publish")
    (out / "data" / "a.parquet").write_bytes(b"shard")
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}"
            for p in sorted(out.rglob("*")) if p.is_file()]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    assert check_output_dir(out, kind="publish", force=True) == out.resolve()
    (out / "data" / "mine.csv").write_text("mine")
    with pytest.raises(UsageError, match="holds data/mine.csv, which avs-tools did not write there"):
        check_output_dir(out, kind="publish", force=True)

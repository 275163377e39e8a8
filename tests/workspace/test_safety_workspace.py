"""Issue #21, item 3: a damaged workspace is named, never reset. A lost (empty, not-SQLite) catalog beside
media, a damaged catalog page, non-UTF-8 user files: one line naming the file and the cause, exit 2, nothing
changed; init never rewrites a differing recipe; deleting WS/.lock lets no second writer in; `avs-tools
backup` and the automatic backup before a schema upgrade. Subprocess runs of the CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.interrupt import clip_workspace, ctrl_c, start_cli, wait_for

DATA = Path(__file__).parent.parent / "catalog" / "data"


@pytest.fixture(scope="module")
def ws6(tmp_path_factory) -> Path:
    """An S4 workspace with 6 collected clips (the media a lost catalog leaves behind)."""
    return clip_workspace(tmp_path_factory.mktemp("ws6"), "avsbench-s4", 6, 5, w=160, h=120)


@pytest.fixture
def ws(ws6, tmp_path) -> Path:
    shutil.copytree(ws6, tmp_path / "ws")
    return tmp_path / "ws"


def _digest(ws: Path) -> dict[str, str]:
    return {p.relative_to(ws).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(ws.rglob("*")) if p.is_file() and p.name != ".lock"}


def _one_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_truncated_catalog_is_a_lost_catalog_and_init_refuses(ws):
    """catalog.sqlite truncated to 0 bytes beside 6 clips: named a lost catalog, never 'interrupted init';
    init (same recipe or another) refuses the folder and rewrites nothing."""
    (ws / "catalog.sqlite").write_bytes(b"")
    before = _digest(ws)
    for cmd in (("status", ws), ("sample", ws, "-q"), ("init", ws, "--recipe", "avsbench-s4"),
                ("init", ws, "--recipe", "avsbench-ms3")):
        line = _one_line(run_cli(*cmd))
        assert "a lost catalog" in line and "restore catalog.sqlite from a backup" in line, line
        assert "media of 6 clips" in line and "interrupted init" not in line, line
        assert _digest(ws) == before, f"{cmd[0]} changed the workspace"


def test_init_never_rewrites_a_recipe_that_differs(tmp_path):
    """A folder an init with another recipe left (its recipe.toml, an empty catalog): init refuses."""
    from avsbench_tools.recipe import load_recipe

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "recipe.toml").write_text(load_recipe("avss").text)
    (ws / "catalog.sqlite").write_bytes(b"")
    line = _one_line(run_cli("init", ws, "--recipe", "avsbench-s4"))
    assert "recipe.toml differs from recipe avsbench-s4" in line and "never rewrites" in line, line
    assert (ws / "recipe.toml").read_text() == load_recipe("avss").text
    run_cli("init", ws, "--recipe", "avss", check=True)  # the same recipe: the interrupted init is repaired


def test_a_damaged_catalog_is_named_and_never_written(ws):
    """A catalog page overwritten, or a catalog that is not SQLite at all: one line naming the file and the
    cause (no 'internal error: DatabaseError'), for readers and writers; the file is left as it was."""
    cat = ws / "catalog.sqlite"
    pages = cat.stat().st_size // 4096
    with open(cat, "r+b") as fh:  # a table page in the middle of the file
        fh.seek((pages // 2) * 4096)
        fh.write(bytes(range(256)) * 16)
    before = _digest(ws)
    for cmd in (("sample", ws, "-q"), ("preannotate", ws, "-q"), ("set-category", ws, "--clip", "c00",
                                                                     "--category", "guitar")):
        line = _one_line(run_cli(*cmd))
        assert str(cat) in line and "is damaged" in line and "restore it from a backup" in line, line
        assert _digest(ws) == before
    cat.write_text("these are my notes\n")
    line = _one_line(run_cli("status", ws))
    assert "catalog.sqlite is not an SQLite database" in line and "a lost catalog" in line, line


def test_non_utf8_user_files_are_one_line(ws, tmp_path):
    """A set-category --csv and a Label Studio token file that are not UTF-8: one line naming the file."""
    csv = tmp_path / "cats.csv"
    csv.write_bytes("clip_id,category\nc00,guitar\nc01,ca\xf1on\n".encode("latin-1"))
    line = _one_line(run_cli("set-category", ws, "--csv", csv))
    assert f"{csv}:3: not UTF-8 text" in line, line
    token = ws / "studio" / "token"
    token.parent.mkdir()
    token.write_bytes(b"\xff\xfe\x00 a damaged token \xe9\n")
    line = _one_line(run_cli("studio", "start", ws, timeout=120))
    assert f"{token}: not UTF-8 text" in line, line
    assert token.read_bytes() == b"\xff\xfe\x00 a damaged token \xe9\n"


def test_deleting_the_lock_file_lets_no_second_writer_in(ws, tmp_path):
    """rm WS/.lock while a stage runs: the next writer is still refused (the lock is on the folder)."""
    proc = start_cli("sample", ws, "-q", "-j", "1", hold=tmp_path / "hold")
    try:
        wait_for(lambda: (tmp_path / "hold.held").exists(), proc)
        (ws / ".lock").unlink()
        for cmd in (("sample", ws, "-q"), ("set-category", ws, "--clip", "c00", "--category", "guitar")):
            line = _one_line(run_cli(*cmd))
            assert "is busy" in line and "WS/.lock file was deleted" in line, line
        assert proc.poll() is None, "the first run ended: the refusal was not tested against a running stage"
    finally:
        rc, _, err, _ = ctrl_c(proc)
    assert rc == 130, err


def test_backup_then_restore_a_lost_catalog(ws, tmp_path):
    """avs-tools backup WS DEST (online: while a stage holds the workspace), then a lost catalog is restored
    from it as the error says."""
    proc = start_cli("sample", ws, "-q", "-j", "1", hold=tmp_path / "hold")
    try:
        wait_for(lambda: (tmp_path / "hold.held").exists(), proc)
        dest = tmp_path / "my backup"
        r = run_cli("backup", ws, dest)
        assert r.returncode == 0, r.stderr
        assert "backup: 6 clips" in r.stdout and "'" + str(dest / "catalog-backup.sqlite") + "'" in r.stdout
    finally:
        ctrl_c(proc)
    copy = sqlite3.connect(dest / "catalog-backup.sqlite")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT COUNT(*) FROM clips").fetchone()[0] == 6
    copy.close()
    r = run_cli("backup", ws, dest)
    assert r.returncode == 2 and "pass --force" in r.stderr
    assert run_cli("backup", ws, dest, "--force").returncode == 0
    r = run_cli("backup", ws, ws)
    assert r.returncode == 2 and "must not replace" in r.stderr
    (ws / "catalog.sqlite").write_bytes(b"")
    for side in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (ws / side).unlink(missing_ok=True)
    assert "a lost catalog" in run_cli("status", ws).stderr
    shutil.copy(dest / "catalog-backup.sqlite", ws / "catalog.sqlite")
    r = run_cli("status", ws, "--json")
    assert r.returncode == 0 and '"clips": 6' in r.stdout, r.stderr


def test_a_schema_upgrade_backs_up_the_catalog_first(tmp_path):
    """Opening a version-2 catalog (the exact schema of that release) upgrades it, after an online backup
    of it as it was in WS/backups/."""
    from avsbench_tools.catalog import schema
    from avsbench_tools.recipe import load_recipe

    ws = tmp_path / "ws"
    for sub in ("sources", "clips", "frames", "audio", "masks"):
        (ws / sub).mkdir(parents=True)
    (ws / "recipe.toml").write_text(load_recipe("avsbench-s4").text)
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.executescript((DATA / "schema_v2.sql").read_text())
    con.executemany("INSERT INTO meta(key, value) VALUES(?, ?)", [
        ("recipe", "avsbench-s4"), ("recipe_digest", "d"), ("schema_version", "2"),
        ("initialised", "2025-01-01T00:00:00Z")])
    con.execute("INSERT INTO sources(source_id, kind, status) VALUES('s1', 'local', 'done')")
    con.commit()
    con.close()
    r = run_cli("status", ws, "--json")
    assert r.returncode == 0, r.stderr
    backups = sorted((ws / "backups").glob("catalog-v2-*.sqlite"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    assert old.execute("SELECT source_id FROM sources").fetchall() == [("s1",)]
    old.close()
    now = sqlite3.connect(ws / "catalog.sqlite")
    assert now.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(schema.SCHEMA_VERSION)
    now.close()
    assert run_cli("status", ws).returncode == 0 and len(list((ws / "backups").iterdir())) == 1  # once
    assert os.stat(backups[0]).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from avsbench_tools.catalog import STAGES, Catalog, Clip, Source
from avsbench_tools.workspace import init_workspace, open_workspace
from avsbench_tools.ws_status import workspace_status
from tests.helpers import run_cli
from tests.helpers.catalog_rows import put_stage


def test_init_is_idempotent_and_status_json_has_every_stage(tmp_path):
    ws = tmp_path / "ws"
    r = run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    assert "created" in r.stdout and f"next: avs-tools collect {ws} --local DIR" in r.stdout
    assert "already initialised" in run_cli("init", ws, "--recipe", "avsbench-ms3", check=True).stdout
    st = json.loads(run_cli("status", ws, "--json", check=True).stdout)
    assert st["recipe"] == "avsbench-ms3" and st["clips"] == 0
    assert list(st["stages"]) == list(STAGES)  # every stage has a command now (push/pull: Label Studio)
    assert all(set(v) == {"done", "failed", "pending"} for v in st["stages"].values())
    table = run_cli("status", ws, check=True)
    assert "collect" in table.stdout + table.stderr


def test_catalog_is_wal_and_counts_stages(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    mode = ws.catalog.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    cat = ws.catalog
    cat.add_source_if_new(Source(source_id="s1", kind="url", url="http://x/a.mp4"))
    cat.add_clip(Clip(clip_id="c1", source_id="s1", start=0, seconds=5, path="clips/c1.mp4"))
    cat.add_clip(Clip(clip_id="c2", source_id="s1", start=5, seconds=5, path="clips/c2.mp4"))
    put_stage(cat, "c1", "sample", "done")
    put_stage(cat, "c2", "sample", "failed", reason="corrupt")
    cat.record_failure("collect", "http://x/b.mp4", "HTTP 404")
    cat.record_failure("collect", "http://x/b.mp4", "HTTP 404")
    ws.close()
    st = workspace_status(tmp_path / "ws")
    assert st["clips"] == 2
    assert st["stages"]["collect"] == {"done": 2, "failed": 1, "pending": 1}
    assert st["stages"]["sample"] == {"done": 1, "failed": 1, "pending": 0}
    assert st["stages"]["export"] == {"done": 0, "failed": 0, "pending": 2}
    assert st["failures"][0]["attempts"] == 2


def test_interrupted_init_is_repaired_by_rerun(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    # a catalog file without the 'initialised' marker is what a kill during init leaves behind
    sqlite3.connect(ws / "catalog.sqlite").execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    (ws / ".tmp-123-recipe.toml").write_text("half")
    proc = run_cli("status", ws)
    assert proc.returncode == 2 and "incomplete" in proc.stderr
    run_cli("init", ws, "--recipe", "avss", check=True)
    assert not list(ws.glob(".tmp-*"))
    assert open_workspace(ws).recipe.name == "avss"


def test_kill_9_during_init_never_leaves_a_broken_workspace(tmp_path):
    for i, delay in enumerate((0.05, 0.15, 0.3, 0.45, 0.6)):
        ws = tmp_path / f"ws{i}"
        p = subprocess.Popen([sys.executable, "-m", "avsbench_tools", "init", str(ws), "--recipe", "ref-avs"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        run_cli("init", ws, "--recipe", "ref-avs", check=True)
        st = json.loads(run_cli("status", ws, "--json", check=True).stdout)
        assert st["recipe"] == "ref-avs"
        Catalog(ws / "catalog.sqlite").db.execute("PRAGMA integrity_check").fetchone()


def test_init_never_writes_into_a_folder_of_user_files(tmp_path):
    user = tmp_path / "project"
    user.mkdir()
    (user / "recipe.toml").write_text("# my own notes, not a recipe\n")
    r = run_cli("init", user, "--recipe", "avss")
    assert r.returncode == 2 and "recipe.toml" in r.stderr and "not empty" in r.stderr
    assert (user / "recipe.toml").read_text() == "# my own notes, not a recipe\n"
    assert sorted(p.name for p in user.iterdir()) == ["recipe.toml"]
    # what a killed init leaves (its own recipe copy, its folders) is repaired, not refused
    ws = tmp_path / "ws"
    ws.mkdir()
    from avsbench_tools.recipe import load_recipe

    (ws / "recipe.toml").write_text(load_recipe("avss").text)
    (ws / "clips").mkdir()
    assert "created" in run_cli("init", ws, "--recipe", "avss", check=True).stdout


def test_writer_lock_is_one_line_and_released(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avss")
    ws.close()
    holder = open_workspace(tmp_path / "ws", lock="sample")
    try:
        from avsbench_tools.errors import WorkspaceBusy

        try:
            open_workspace(tmp_path / "ws", lock="preannotate")
        except WorkspaceBusy as exc:
            assert "busy" in str(exc) and "sample" in str(exc)
        else:
            raise AssertionError("a second writer got the lock")
        assert workspace_status(tmp_path / "ws")["clips"] == 0  # readers never wait
    finally:
        holder.close()
    open_workspace(tmp_path / "ws", lock="preannotate").close()


def test_paths_are_stored_relative_to_the_workspace(tmp_path, monkeypatch):
    ws, _ = init_workspace(tmp_path / "ws", "avss")
    try:
        inside = ws.path("clips", "a.mp4")
        assert ws.rel(inside) == "clips/a.mp4" and ws.rel(str(tmp_path / "ws" / "frames" / ".." / "clips")) == "clips"
        assert ws.stored(inside) == "clips/a.mp4" and ws.stored("/videos/b.mp4") == "/videos/b.mp4"
        for outside in (tmp_path / "elsewhere.mp4", tmp_path / "ws"):
            try:
                ws.rel(outside)
            except ValueError as exc:
                assert str(outside) in str(exc)
            else:
                raise AssertionError(f"{outside} is not inside the workspace")
        assert ws.path("clips/a.mp4") == inside and ws.path("/videos/b.mp4") == Path("/videos/b.mp4")
        assert ws.abs("clips/a.mp4") == tmp_path / "ws" / "clips" / "a.mp4" and ws.abs("/x/y") == Path("/x/y")
        link = tmp_path / "link"
        link.symlink_to(tmp_path / "ws")
        assert ws.rel(link / "audio" / "a.wav") == "audio/a.wav"  # reached through a symlink
    finally:
        ws.close()
    monkeypatch.chdir(tmp_path)  # a workspace given as a relative path
    rel_ws = open_workspace(Path("ws"))
    try:
        assert rel_ws.rel(Path("ws") / "masks" / "m.png") == "masks/m.png"
        assert rel_ws.rel(tmp_path / "ws" / "masks" / "m.png") == "masks/m.png"
        assert rel_ws.abs("masks/m.png") == tmp_path / "ws" / "masks" / "m.png"
    finally:
        rel_ws.close()


def test_status_and_clips_of_a_moved_workspace(tmp_path):
    import shutil

    from avsbench_tools.ws_status import list_clips

    (tmp_path / "a").mkdir()
    ws, _ = init_workspace(tmp_path / "a" / "ws", "avsbench-s4")
    ws.catalog.add_source_if_new(Source(source_id="s1", kind="url", url="http://x/a.mp4", path="sources/s1.mp4"))
    ws.catalog.add_clip(Clip(clip_id="c1", source_id="s1", start=0, seconds=5, path="clips/c1.mp4"))
    ws.catalog.finish("sample", "c1", {"fps": 1})
    ws.close()
    shutil.move(tmp_path / "a" / "ws", tmp_path / "b")
    st = workspace_status(tmp_path / "b")
    assert st["clips"] == 1 and st["stages"]["sample"] == {"done": 1, "failed": 0, "pending": 0}
    assert list_clips(tmp_path / "b") == [{"clip": "c1", "category": None, "source": "http://x/a.mp4", "start": 0.0,
                                           "seconds": 5, "split": None,
                                           "stages": {s: "done" if s in ("collect", "sample") else "pending"
                                                      for s in STAGES}}]
    moved = open_workspace(tmp_path / "b")
    try:
        assert moved.path(moved.catalog.source("s1").path) == tmp_path / "b" / "sources" / "s1.mp4"
    finally:
        moved.close()

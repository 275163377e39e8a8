"""collect off the happy path (issue #12): kill -9 and Ctrl-C resume, loud failures, permanent
rejections, every file of a --local folder accounted for. Real yt-dlp, ffmpeg and a loopback server."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from avsbench_tools.collect import CollectOptions, collect, is_permanent
from avsbench_tools.media import ffmpeg_exe, probe
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here
from tests.helpers.httpserver import MediaServer
from tests.helpers.media_factory import make_video


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    srv = MediaServer(tmp_path / "www")
    yield srv
    srv.close()


def _urls(tmp_path, server, names, file="urls.txt"):
    f = tmp_path / file
    f.write_text("".join(server.url(n) + "\n" for n in names))
    return f


def _strays(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.startswith(".tmp-") or p.suffix in (".part", ".ytdl")]


def _db(ws: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(ws / "catalog.sqlite", timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _clip_rows(ws: Path) -> list[tuple]:
    return _db(ws, "SELECT clip_id, start, seconds, category, split, n_frames FROM clips ORDER BY clip_id")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "avsbench_tools", *map(str, args)]


def _group_alive(pgid: int) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "name", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.info['name']}")
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return out


def test_kill9_after_a_download_finished_picks_it_up(tmp_path, server):
    """Issue row: kill -9 during collect of 4 URLs, then the same command: 3 clips, the finished
    download recorded as "download produced no file". The kill lands after a source's download
    finished and was recorded, while its clips are being cut."""
    names = []
    for i in range(4):
        make_video(server.root / f"v{i}.mp4", seconds=10)
        names.append(f"v{i}.mp4")
    urls = _urls(tmp_path, server, names)
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    opts = ["--urls", urls, "--any-license", "-q", "--clips-per-video", "2", "--category", "dog_barking"]
    p = subprocess.Popen(_cli("collect", ws, *opts), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    downloaded: list[tuple] = []
    while time.time() < deadline and p.poll() is None:
        downloaded = _db(ws, "SELECT source_id, url FROM sources WHERE status='downloaded'")
        if downloaded:
            break
        time.sleep(0.01)
    assert downloaded and p.poll() is None, "no source was caught between download and cut"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    name = downloaded[0][1].rsplit("/", 1)[1]
    fetched = server.completed.get(name, 0)
    proc = cli_here("collect", ws, *opts)
    assert proc.returncode == 0, proc.stderr
    assert "download produced no file" not in proc.stdout + proc.stderr
    assert server.completed.get(name, 0) == fetched, "a finished download was fetched again"
    assert not _db(ws, "SELECT * FROM failures"), "nothing failed"
    assert {r[0] for r in _db(ws, "SELECT status FROM sources")} == {"done"}
    ref = tmp_path / "ref"
    cli_here("init", ref, "--recipe", "avsbench-ms3", check=True)
    cli_here("collect", ref, *opts, check=True)
    assert _clip_rows(ws) == _clip_rows(ref) and len(_clip_rows(ws)) == 8
    assert sorted(p.name for p in (ws / "clips").iterdir()) == sorted(p.name for p in (ref / "clips").iterdir())
    assert not _strays(ws)


def test_a_download_deleted_by_hand_is_fetched_again(tmp_path, server):
    """The download archive says done but the file is gone: fetch it again, not "produced no file"."""
    make_video(server.root / "a.mp4", seconds=5)
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    urls = _urls(tmp_path, server, ["a.mp4"])
    assert collect(ws, CollectOptions(urls=urls, any_license=True)).new_clips == 1
    before = server.completed["a.mp4"]
    src = ws.catalog.sources()[0]
    ws.path(src.path).unlink()
    ws.path("clips", f"{ws.catalog.clips()[0].clip_id}.mp4").unlink()
    ws.catalog.set_source_status(src.source_id, "pending", None)
    res = collect(ws, CollectOptions(urls=urls, any_license=True))
    assert res.failed == res.rejected == 0 and res.new_clips == 1 and server.completed["a.mp4"] > before
    assert ws.path(ws.catalog.source(src.source_id).path).is_file()


def test_every_url_failing_is_loud_and_exits_1(tmp_path, server):
    """Issue row: `collect --urls` where every URL fails printed "2 failed", exit 0."""
    make_video(server.root / "denied.mp4", seconds=5)
    server.modes.update({"denied.mp4": "403"})
    urls = _urls(tmp_path, server, ["gone.mp4", "denied.mp4"])
    cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4", check=True)
    proc = cli_here("collect", tmp_path / "ws", "--urls", urls, "--any-license", "--category", "dog_barking", "-q",
                   "--retries", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"failed: {server.url('gone.mp4')}: rejected: not found (HTTP 404)" in proc.stderr
    assert f"failed: {server.url('denied.mp4')}: forbidden (HTTP 403)" in proc.stderr
    assert "0 new clips" in proc.stdout and "1 failed (retryable), 1 rejected (permanent)" in proc.stdout
    assert "every one of the 2 sources of this run failed or was rejected" in proc.stderr
    assert "next:" not in proc.stdout
    ws = open_workspace(tmp_path / "ws")
    perm = {ws.catalog.source(f.item).url.rsplit("/", 1)[1]: is_permanent(f) for f in ws.catalog.failures("collect")}
    ws.close()
    assert perm == {"gone.mp4": True, "denied.mp4": False}


def _m4a(path: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
                    "-c:a", "aac", str(path)], check=True)
    return path


def test_local_folder_every_file_is_accounted_for(tmp_path):
    """Issue rows: an audio-only .m4a and a dangling symlink vanished without a word; a workspace
    inside the --local folder was collected from (its own clips came back as new sources)."""
    d = tmp_path / "footage"
    make_video(d / "good.mp4", seconds=5)
    _m4a(d / "song.m4a")
    (d / "link.mp4").symlink_to(d / "gone.mp4")
    (d / "notes.txt").write_text("shot list\n")
    (d / ".DS_Store").write_bytes(b"\0")
    ws_dir = d / "ws"  # the workspace being filled lives inside the folder it reads
    cli_here("init", ws_dir, "--recipe", "avsbench-s4", check=True)
    other = d / "old-ws"
    cli_here("init", other, "--recipe", "avsbench-s4", check=True)
    make_video(other / "clips" / "old_0_5000.mp4", seconds=5)
    proc = cli_here("collect", ws_dir, "--local", d, "--category", "dog_barking")
    assert proc.returncode == 0, proc.stderr
    assert "1 new clips" in proc.stdout and "from 4 sources" in proc.stdout and "3 rejected (permanent)" in proc.stdout
    err = proc.stderr
    assert "failed: song.m4a: rejected: audio only, no video stream (.m4a file)" in err
    assert f"failed: link.mp4: rejected: dangling symlink (its target {d / 'gone.mp4'} does not exist)" in err
    assert "failed: notes.txt: rejected: not a video file (.txt file" in err
    assert "note: skipped ws/: an avs-tools workspace inside --local" in err
    assert "note: skipped old-ws/: an avs-tools workspace inside --local" in err
    assert "note: skipped 1 hidden file(s)" in err
    assert proc.stdout.strip().splitlines()[-1] == f"next: avs-tools sample {ws_dir}"
    ws = open_workspace(ws_dir)
    rows = {ws.catalog.source(f.item).title: (f.reason, is_permanent(f)) for f in ws.catalog.failures("collect")}
    assert set(rows) == {"song.m4a", "link.mp4", "notes.txt"} and all(p for _, p in rows.values())
    assert [Path(ws.catalog.source(c.source_id).path).name for c in ws.catalog.clips()] == ["good.mp4"]
    ws.close()
    # the same command again: nothing new, no ledger row counted twice, and it says why
    proc = cli_here("collect", ws_dir, "--local", d, "--category", "dog_barking")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do: all 1 source(s) are already collected" in proc.stdout
    assert "3 rejected for good, not retried" in proc.stdout
    assert _db(ws_dir, "SELECT MAX(attempts), COUNT(*) FROM failures") == [(1, 3)]
    assert len(_db(ws_dir, "SELECT * FROM clips")) == 1


def test_local_sources_say_copying(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    stages = []
    collect(ws, CollectOptions(local=d, category="dog_barking"), progress=lambda s, *a: stages.append(s))
    assert "copying" in stages and "downloading" not in stages


def test_permanent_rejections_are_not_retried(tmp_path):
    """Issue row: a file with no audio stream was "rejected", then `status` offered --retry-failed for
    it forever and the retry did nothing."""
    d = tmp_path / "footage"
    make_video(d / "good.mp4", seconds=5)
    make_video(d / "silent.mp4", seconds=5, audio=False)
    make_video(d / "short.mp4", seconds=2)
    (d / "corrupt.mp4").write_bytes(os.urandom(4000))
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    res = collect(ws, CollectOptions(local=d, category="dog_barking"))
    assert res.new_clips == 1 and res.rejected == 3 and res.failed == 0
    fails = ws.catalog.failures("collect")
    assert all(is_permanent(f) and f.reason.startswith("rejected: ") for f in fails) and len(fails) == 3
    assert {s.status for s in ws.catalog.sources()} == {"done", "rejected"}
    ws.close()
    proc = cli_here("collect", tmp_path / "ws", "--retry-failed")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do: no failed source to retry; 3 rejected for good, not retried" in proc.stdout
    assert _db(tmp_path / "ws", "SELECT MAX(attempts) FROM failures") == [(1,)]
    assert _db(tmp_path / "ws", "SELECT COUNT(*) FROM sources WHERE status='rejected'") == [(3,)]


def test_nothing_asked_is_a_usage_error_and_quiet_has_no_next_line(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4", check=True)
    proc = cli_here("collect", tmp_path / "ws")
    assert proc.returncode == 2 and "nothing to collect" in proc.stderr and "--local DIR" in proc.stderr
    proc = cli_here("collect", tmp_path / "ws", "--local", d, "--category", "dog_barking", "-q")
    assert proc.returncode == 0 and "next:" not in proc.stdout
    proc = cli_here("collect", tmp_path / "ws")
    assert proc.returncode == 0 and "nothing to do: all 1 source(s) are already collected" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"next: avs-tools sample {tmp_path / 'ws'}"


def test_ctrl_c_stops_promptly_records_finished_clips_and_resumes(tmp_path, server):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) in the middle of downloads
    and cuts: exit 130 within seconds with the resume line, no yt-dlp/ffmpeg left, every clip on disk
    recorded, no partial file; a second collect meanwhile is refused; the re-run skips finished work.
    The last two videos are held half-way by the server ('hold' mode) until after the interrupt, so the
    run is mid-download when the Ctrl-C comes however fast or loaded the machine is (no race)."""
    names = []
    for i in range(5):
        make_video(server.root / f"v{i}.mp4", seconds=10)
        names.append(f"v{i}.mp4")
        server.modes[f"v{i}.mp4"] = "slow" if i < 3 else "hold"
    server.slow_rate = 150_000  # about 1.3 s per download
    urls = _urls(tmp_path, server, names)
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-ms3", check=True)
    opts = ["--urls", urls, "--any-license", "--clips-per-video", "2", "--category", "dog_barking", "-j", "2"]
    p = subprocess.Popen(_cli("collect", ws, *opts), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None and len(_db(ws, "SELECT * FROM clips")) < 1:
            time.sleep(0.02)
        assert p.poll() is None, "collect ended before the interrupt"
        busy = cli_here("collect", ws, *opts)
        assert busy.returncode == 2 and "busy" in busy.stderr and "collect" in busy.stderr
        t0 = time.time()
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        server.release.set()  # the held bodies' handler threads end (their client is gone)
    assert p.returncode == 130, err
    assert took < 5, f"took {took:.1f} s to stop"
    line = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert line and line[0].endswith("left; run the same command to resume"), err
    assert "Traceback" not in err
    deadline = time.time() + 3
    while _group_alive(p.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(p.pid), "a worker process outlived the interrupt"
    recorded = {r[0] for r in _db(ws, "SELECT clip_id FROM clips")}
    on_disk = {f.stem for f in (ws / "clips").iterdir()}
    assert recorded and recorded == on_disk
    assert not _strays(ws)
    for c in on_disk:
        assert probe(ws / "clips" / f"{c}.mp4").n_frames == 125
    done_urls = [r[0] for r in _db(ws, "SELECT url FROM sources WHERE status='done'")]
    fetched = dict(server.completed)
    server.modes.clear()
    proc = cli_here("collect", ws, *opts)
    assert proc.returncode == 0, proc.stderr
    for u in done_urls:
        n = u.rsplit("/", 1)[1]
        assert server.completed.get(n, 0) == fetched.get(n, 0), f"{n} was fetched again"
    assert {r[0] for r in _db(ws, "SELECT clip_id FROM clips")} == {f"v{i}_{k}" for i in range(5) for k in (0, 1)}
    assert not _db(ws, "SELECT * FROM failures")


def test_paths_are_relative_and_a_moved_workspace_resumes(tmp_path, server):
    """Issue #13: sources.path and clips.path are stored relative to the workspace, so a workspace
    moved to another folder resumes: a finished download (killed before its clip was cut) is found
    at its new place and cut, not fetched again."""
    for n in ("a.mp4", "b.mp4"):
        make_video(server.root / n, seconds=5)
    urls = _urls(tmp_path, server, ["a.mp4", "b.mp4"])
    (tmp_path / "first").mkdir()
    ws, _ = init_workspace(tmp_path / "first" / "ws", "avsbench-s4")
    assert collect(ws, CollectOptions(urls=urls, any_license=True, category="dog_barking")).new_clips == 2
    for src in ws.catalog.sources():
        assert src.path == f"sources/{src.source_id}.mp4", src.path
    for c in ws.catalog.clips():
        assert c.path == f"clips/{c.clip_id}.mp4", c.path
    # as after kill -9 between the download and the cut of a.mp4
    a = next(s for s in ws.catalog.sources() if s.url.endswith("/a.mp4"))
    (cid,) = ws.catalog.clip_ids_for_source(a.source_id)
    ws.catalog.set_source_status(a.source_id, "downloaded", None)
    ws.path("clips", f"{cid}.mp4").unlink()
    ws.close()
    fetched = dict(server.completed)
    moved = tmp_path / "elsewhere" / "moved-ws"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "first" / "ws"), str(moved))
    proc = cli_here("collect", moved, "--urls", urls, "--any-license", "--category", "dog_barking")
    assert proc.returncode == 0, proc.stderr
    assert "1 new clips (2 in the workspace)" in proc.stdout
    assert server.completed == fetched, "a finished download was fetched again"
    ws = open_workspace(moved)
    try:
        assert not ws.catalog.failures()
        assert ws.catalog.source(a.source_id).path == f"sources/{a.source_id}.mp4"
        assert probe(ws.path(ws.catalog.clip(cid).path)).n_frames == 125
    finally:
        ws.close()


def test_a_local_folder_inside_a_moved_workspace_keeps_its_sources(tmp_path):
    """A --local folder kept inside the workspace is stored relative: after the workspace is moved, a
    queued file is found at its new place and the same command queues no file twice."""
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    for n in ("a.mp4", "b.mp4"):
        make_video(ws.path("footage", n), seconds=5)
    assert collect(ws, CollectOptions(local=ws.path("footage"), category="dog_barking")).new_clips == 2
    assert sorted(s.path for s in ws.catalog.sources()) == ["footage/a.mp4", "footage/b.mp4"]
    b = next(s for s in ws.catalog.sources() if s.path == "footage/b.mp4")
    (cid,) = ws.catalog.clip_ids_for_source(b.source_id)
    ws.catalog.set_source_status(b.source_id, "pending", None)
    ws.path("clips", f"{cid}.mp4").unlink()
    ws.close()
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "ws"), str(moved))
    proc = cli_here("collect", moved, "--local", moved / "footage", "--category", "dog_barking")
    assert proc.returncode == 0, proc.stderr
    assert "1 new clips (2 in the workspace) from 1 sources" in proc.stdout
    assert _db(moved, "SELECT COUNT(*) FROM sources") == [(2,)]
    assert not _db(moved, "SELECT * FROM failures")
    assert probe(moved / "clips" / f"{cid}.mp4").n_frames == 125

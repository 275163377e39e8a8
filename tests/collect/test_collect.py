"""collect through the real yt-dlp and ffmpeg, against media served from a loopback HTTP server."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from avsbench_tools.collect import (
    CollectOptions,
    build_search,
    classify_error,
    collect,
    read_csv_rows,
    search_keyword,
)
from avsbench_tools.media import probe
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import REAL_METADATA, cli_here
from tests.helpers.httpserver import MediaServer
from tests.helpers.media_factory import make_video, read_counter


@pytest.fixture
def server(tmp_path):
    srv = MediaServer(tmp_path / "www")
    (tmp_path / "www").mkdir()
    yield srv
    srv.close()


def _ws(tmp_path, recipe="avsbench-s4"):
    ws, _ = init_workspace(tmp_path / "ws", recipe)
    return ws


def _strays(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.startswith(".tmp-") or p.suffix in (".part", ".ytdl")]


def _urls(tmp_path, server, names):
    f = tmp_path / "urls.txt"
    f.write_text("".join(server.url(n) + "\n" for n in names))
    return f


def test_urls_through_yt_dlp_give_exact_clips(tmp_path, server, world_ms3):
    names = []
    for mp4 in sorted((world_ms3 / "videos").glob("*.mp4"))[:3]:
        shutil.copy(mp4, server.root / mp4.name)
        names.append(mp4.name)
    urls = _urls(tmp_path, server, names)
    cli_here("init", tmp_path / "ws", "--recipe", world_ms3 / "recipe.toml", check=True)
    proc = cli_here("collect", tmp_path / "ws", "--urls", urls, "--any-license", "--category", "guitar", "-q",
                   check=True)
    assert "3 new clips" in proc.stdout
    clips = sorted((tmp_path / "ws" / "clips").glob("*.mp4"))
    assert len(clips) == 3
    for c in clips:
        pr = probe(c)
        assert pr.has_audio and pr.n_frames == 125 and abs(pr.duration - 5.0) <= 1 / 25 + 0.03
    ws = open_workspace(tmp_path / "ws")
    srcs = ws.catalog.sources()
    assert {s.status for s in srcs} == {"done"} and all(s.fetched_at and s.url for s in srcs)
    assert (tmp_path / "ws" / "download-archive.txt").read_text().count("generic") == 3
    gets = dict(server.gets)
    proc = cli_here("collect", tmp_path / "ws", "--urls", urls, "--any-license", "--category", "guitar", check=True)
    assert "nothing to do: all 3 source(s) are already collected" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"next: avs-tools sample {tmp_path / 'ws'}"
    assert server.gets == gets, "a re-run must not touch the network for finished sources"
    assert len(list((tmp_path / "ws" / "clips").glob("*.mp4"))) == 3
    assert not _strays(tmp_path / "ws")


def test_licence_filter_records_rejections_and_any_license_lifts_it(tmp_path, server):
    make_video(server.root / "a.mp4", seconds=5)
    ws = _ws(tmp_path)
    res = collect(ws, CollectOptions(urls=_urls(tmp_path, server, ["a.mp4"])))
    assert res.rejected == 1 and res.new_clips == 0
    f = ws.catalog.failures("collect")[0]
    assert "Creative Commons" in f.reason and "licence" in (f.detail or "")
    res = collect(ws, CollectOptions(urls=_urls(tmp_path, server, ["a.mp4"]), any_license=True))
    assert res.new_clips == 1 and not ws.catalog.failures("collect")


def test_http_errors_and_timeouts_become_ledger_rows_then_retry_completes(tmp_path, server):
    for n in ("gone.mp4", "denied.mp4", "slow.mp4", "fine.mp4"):
        make_video(server.root / n, seconds=5)
    server.modes.update({"gone.mp4": "404", "denied.mp4": "403", "slow.mp4": "hang"})
    ws = _ws(tmp_path)
    urls = _urls(tmp_path, server, ["gone.mp4", "denied.mp4", "slow.mp4", "fine.mp4"])
    opts = CollectOptions(urls=urls, any_license=True, timeout=2, retries=0)
    res = collect(ws, opts)
    # 404 is permanent (a removed video), 403 and the timeout are transient
    assert res.new_clips == 1 and res.failed == 2 and res.rejected == 1
    reasons = sorted(f.reason for f in ws.catalog.failures("collect"))
    assert any("404" in r and r.startswith("rejected") for r in reasons)
    assert any("403" in r for r in reasons) and any("timeout" in r for r in reasons)
    st = json.loads(cli_here("status", tmp_path / "ws", "--json", check=True).stdout)
    assert st["stages"]["collect"]["failed"] == 3 and st["clips"] == 1
    server.modes.clear()
    res = collect(ws, CollectOptions(urls=urls, any_license=True, timeout=2, retry_failed=True))
    assert res.new_clips == 2 and len(ws.catalog.clips()) == 3
    left = ws.catalog.failures("collect")
    assert [f.reason for f in left] == ["rejected: not found (HTTP 404)"] and left[0].attempts == 1
    assert server.gets.get("gone.mp4", 0) == 1, "--retry-failed must not retry a permanent rejection"
    attempts = ws.catalog.failures("collect", include_resolved=True)
    assert sum(f.resolved for f in attempts) == 2 and len(attempts) == 3


def test_csv_rows_cut_at_their_start_frame_exactly(tmp_path, server):
    make_video(server.root / "long.mp4", seconds=12, fps=25)
    rows = tmp_path / "list.csv"
    rows.write_text(f"ytid,start,label,split\n{server.url('long.mp4')},2,dog_barking,train\n"
                    f"{server.url('long.mp4')},6,dog_barking,test\n")
    ws = _ws(tmp_path)
    res = collect(ws, CollectOptions(csv=rows, any_license=True))
    assert res.new_clips == 2
    clips = sorted(ws.catalog.clips(), key=lambda c: c.start)
    assert [c.start for c in clips] == [2.0, 6.0] and [c.split for c in clips] == ["train", "test"]
    assert {c.category for c in clips} == {"dog_barking"}
    for c in clips:
        with av.open(str(ws.path(c.path))) as cont:
            first = next(cont.decode(video=0)).to_ndarray(format="rgb24")
        assert read_counter(first) == int(c.start * 25)
    # the shared source was downloaded once
    assert len(list(ws.path("sources").glob("*.mp4"))) == 1


def test_local_folder_good_and_bad_files(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "good.mp4", seconds=6)
    make_video(d / "sub" / "straße mit leerzeichen é.mp4", seconds=5)
    make_video(d / "portrait.mp4", seconds=5, w=96, h=160)
    make_video(d / "vfr.mp4", seconds=5.5, vfr=True)
    make_video(d / "silent.mp4", seconds=5, audio=False)
    make_video(d / "short.mp4", seconds=2)
    (d / "empty.mp4").write_bytes(b"")
    (d / "corrupt.mp4").write_bytes(os.urandom(5000))
    ws = _ws(tmp_path)
    res = collect(ws, CollectOptions(local=d))
    assert res.new_clips == 4, [f.reason for f in ws.catalog.failures()]
    reasons = {Path(ws.catalog.source(f.item).path).name: f.reason for f in ws.catalog.failures("collect")}
    assert set(reasons) == {"silent.mp4", "short.mp4", "empty.mp4", "corrupt.mp4"}
    assert "no audio" in reasons["silent.mp4"] and "too short" in reasons["short.mp4"]
    assert "empty" in reasons["empty.mp4"] and "corrupt" in reasons["corrupt.mp4"]
    for c in ws.catalog.clips():
        assert all(ch.isalnum() or ch in "_-" for ch in c.clip_id), c.clip_id
        pr = probe(ws.path(c.path))
        assert pr.n_frames == 125 and pr.has_audio and pr.fps == 25
    portrait = next(c for c in ws.catalog.clips() if c.clip_id.startswith("portrait"))
    assert portrait.height > portrait.width
    src = ws.catalog.source(ws.catalog.clips()[0].source_id)
    assert src.license and src.title


def test_sigkill_mid_download_then_rerun_matches_an_uninterrupted_run(tmp_path, server):
    make_video(server.root / "first.mp4", seconds=5)
    make_video(server.root / "big.mp4", seconds=10, w=320, h=240, noise=True)
    assert (server.root / "big.mp4").stat().st_size > 1_500_000
    server.modes["big.mp4"] = "hold"  # its body stops after 64 KiB until server.release is set
    urls = _urls(tmp_path, server, ["first.mp4", "big.mp4"])
    cli_here("init", tmp_path / "ws", "--recipe", "avsbench-ms3", check=True)
    args = [sys.executable, "-m", "avsbench_tools", "collect", str(tmp_path / "ws"), "--urls", str(urls),
            "--any-license", "-q", "--clips-per-video", "2", "--category", "dog_barking"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # kill while big.mp4 is downloading: its download GET has started (jobs=1, so first.mp4 is finished and
    # recorded by then; waiting on any .part could catch first.mp4's own part file and make this flaky); the
    # server holds that body half-way, so the download cannot finish before the kill
    while time.time() < deadline and not (server.gets.get("big.mp4", 0) >= 2
                                          and list((tmp_path / "ws" / "sources").glob("*.part"))):
        assert p.poll() is None, "collect ended before big.mp4's download started"
        time.sleep(0.1)
    assert p.poll() is None, "the download finished before the kill"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    server.release.set()
    first_gets = server.gets["first.mp4"]
    server.modes.clear()
    cli_here(*args[3:], check=True)
    assert server.gets["first.mp4"] == first_gets, "a finished download was fetched again"
    ref = tmp_path / "ref"
    cli_here("init", ref, "--recipe", "avsbench-ms3", check=True)
    cli_here("collect", ref, *args[5:], check=True)
    got = sorted(p.name for p in (tmp_path / "ws" / "clips").iterdir())
    assert got == sorted(p.name for p in (ref / "clips").iterdir()) and len(got) == 3
    assert not _strays(tmp_path / "ws")
    ids = [c.clip_id for c in open_workspace(tmp_path / "ws").catalog.clips()]
    assert len(ids) == len(set(ids)) == 3 and any(i.endswith("_1") for i in ids)


@pytest.mark.parametrize("keyword", ['"; rm -rf ~"', "--exec", "https://example.com/watch?v=x", "$(touch pwned)"])
def test_keywords_are_plain_search_text(keyword, tmp_path):
    query, opts = build_search(keyword, 5)
    assert query == f"ytsearch5:{keyword}" and opts["extract_flat"] == "in_playlist" and opts["skip_download"]
    import yt_dlp

    requests, queries, params = [], [], []

    class Offline(yt_dlp.YoutubeDL):
        """The real YoutubeDL, stopped where the request would leave the machine."""

        def extract_info(self, url, *a, **kw):
            queries.append(url)
            params.append(dict(self.params))
            return super().extract_info(url, *a, **kw)

        def urlopen(self, req):
            requests.append(req if isinstance(req, str) else req.url)
            raise yt_dlp.utils.DownloadError("offline: request stopped at the machine's edge")

    with pytest.raises(yt_dlp.utils.DownloadError):
        search_keyword(keyword, 5, ydl_class=Offline)
    assert queries == [f"ytsearch5:{keyword}"]
    assert params[0]["extract_flat"] == "in_playlist" and params[0]["skip_download"] is True
    assert requests and all(r.startswith("https://www.youtube.com") for r in requests)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_keyword_search_without_js_runtime_says_what_to_install(tmp_path):
    cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4", check=True)
    proc = cli_here("collect", tmp_path / "ws", "--keywords", "dog barking", "--category", "dog_barking", "-q")
    assert proc.returncode == 1 and "avs-tools[youtube]" in proc.stderr and "deno" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_real_avss_rows_offline_become_network_ledger_rows(tmp_path):
    rows = tmp_path / "avss_v1s.csv"
    with open(REAL_METADATA / "avss_metadata.csv", newline="") as fh, open(rows, "w", newline="") as out:
        w = csv.writer(out)
        n = 0
        for r in csv.DictReader(fh):
            if r["label"] == "v1s":
                w.writerow([r["vid"], int(r["s_min"]) * 60 + int(r["s_sec"]), r["a_obj"]])
                n += 1
    assert len(read_csv_rows(rows)) == n == 4932
    cli_here("init", tmp_path / "ws", "--recipe", "avss", check=True)
    t0 = time.time()
    proc = cli_here("collect", tmp_path / "ws", "--csv", rows, "-q", "--timeout", "5")
    # every row failed: loud, with the first URLs and their reason, and where to see the rest
    assert proc.returncode == 1, proc.stderr
    assert "every one of the 4932 sources of this run failed" in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("failed: https://www.youtube.com/")]
    assert len(lines) == 5 and all("network error" in ln for ln in lines)
    assert f"and 4927 more: avs-tools status {tmp_path / 'ws'} --failures" in proc.stderr
    assert time.time() - t0 < 240
    st = json.loads(cli_here("status", tmp_path / "ws", "--json", check=True).stdout)
    assert st["stages"]["collect"]["failed"] == 4932 and st["clips"] == 0
    assert all("network" in f["reason"] for f in st["failures"])
    ws = open_workspace(tmp_path / "ws")
    src = ws.catalog.sources()[0]
    assert src.url.startswith("https://www.youtube.com/watch?v=") and src.category in ws.recipe.categories
    ws.close()
    proc = cli_here("collect", tmp_path / "ws", "--retry-failed", "-q", "--timeout", "5")
    assert proc.returncode == 1 and "failed: https://www.youtube.com/" in proc.stderr
    st = json.loads(cli_here("status", tmp_path / "ws", "--json", check=True).stdout)
    assert st["stages"]["collect"]["failed"] == 4932
    assert max(f["attempts"] for f in st["failures"]) == 2


def test_error_classification():
    assert classify_error("HTTP Error 429: Too Many Requests")[0].startswith("rate limited")
    assert classify_error("Sign in to confirm you're not a bot")[0].startswith("bot check")
    assert classify_error("Private video. Sign in if you've been granted access")[0] == "private video"
    assert classify_error("Video unavailable. This video has been removed by the uploader")[0] == "removed or unavailable"
    assert classify_error("HTTP Error 403: Forbidden")[0] == "forbidden (HTTP 403)"


def test_bad_options_are_usage_errors(tmp_path):
    cli_here("init", tmp_path / "ws", "--recipe", "avsbench-s4", check=True)
    for args, needle in ((["--urls", tmp_path / "nope.txt"], "not found"), (["--category", "unicorn"], "unicorn"),
                         (["--seconds", "10", "--local", tmp_path], "--seconds")):
        proc = cli_here("collect", tmp_path / "ws", *args, "-q")
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("ytid,start\nabc,zero\n")
    proc = cli_here("collect", tmp_path / "ws", "--csv", bad, "-q")
    assert proc.returncode == 2 and "bad.csv:2" in proc.stderr
    bad.write_text("ytid,start,label,split\nabc,0,dog_barking,testing\n")
    proc = cli_here("collect", tmp_path / "ws", "--csv", bad, "-q")
    assert proc.returncode == 2 and "split 'testing'" in proc.stderr and "one of: test, train, val" in proc.stderr


def test_frame_counter_roundtrip():
    from tests.helpers.media_factory import counter_frame

    assert [read_counter(counter_frame(i, 160, 120)) for i in (0, 1, 77, 200)] == [0, 1, 77, 200]
    assert np.asarray(counter_frame(3, 160, 120)).shape == (120, 160, 3)

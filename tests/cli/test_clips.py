"""avs-tools clips: every clip with category, source (URL or file name), length, split and stage states."""

from __future__ import annotations

import json

from avsbench_tools.catalog import Clip, Source
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.workspace import init_workspace
from tests.helpers import cli_here
from tests.helpers.media_factory import make_video

STAGES = ["collect", "sample", "preannotate", "push", "pull", "export"]


def test_clips_lists_category_source_length_split_and_stage_states(tmp_path):
    videos = tmp_path / "my videos"
    make_video(videos / "dog.mp4", seconds=5)
    make_video(videos / "sub" / "cat.mp4", seconds=5)
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    collect(ws, CollectOptions(local=videos, any_license=True, category="dog_barking"))
    # a clip from a URL source (as collect --urls records it), with a split
    ws.catalog.add_source_if_new(Source(source_id="yt-abc", kind="url", url="https://example.org/abc.mp4", status="done"))
    ws.catalog.add_clip(Clip(clip_id="abc_0", source_id="yt-abc", start=12.0, seconds=5, path="clips/abc_0.mp4",
                             category="cat_meowing", split="test"))
    make_video(ws.path("clips", "abc_0.mp4"), seconds=5)
    local_ids = sorted(c.clip_id for c in ws.catalog.clips() if c.clip_id != "abc_0")
    ws.path("clips", f"{local_ids[1]}.mp4").write_bytes(b"\0" * 100)  # this one will fail to sample
    ws.close()
    cli_here("sample", tmp_path / "ws", "-q", check=True)

    rows = json.loads(cli_here("clips", tmp_path / "ws", "--json", check=True).stdout)
    by_id = {r["clip"]: r for r in rows}
    assert sorted(by_id) == sorted([*local_ids, "abc_0"])
    for r in rows:
        assert list(r["stages"]) == STAGES and r["stages"]["collect"] == "done"
        assert "/" not in r["source"] or r["source"].startswith("https://")  # no local absolute path
    assert by_id["abc_0"] == {"clip": "abc_0", "category": "cat_meowing", "source": "https://example.org/abc.mp4",
                              "start": 12.0, "seconds": 5, "split": "test",
                              "stages": {"collect": "done", "sample": "done", "preannotate": "pending",
                                         "push": "pending", "pull": "pending", "export": "pending"}}
    assert {by_id[c]["source"] for c in local_ids} == {"dog.mp4", "cat.mp4"}
    assert {by_id[c]["category"] for c in local_ids} == {"dog_barking"}
    assert by_id[local_ids[0]]["stages"]["sample"] == "done"
    assert by_id[local_ids[1]]["stages"]["sample"] == "failed"

    text = cli_here("clips", tmp_path / "ws", check=True)
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["clip", "category", "source", "seconds", "split", *STAGES]
    assert len(lines) == 1 + len(rows)
    for cid in by_id:  # ids are never cut short
        assert any(ln.split()[0] == cid for ln in lines[1:])
    assert str(tmp_path) not in text.stdout


def test_clips_on_an_empty_workspace_says_what_to_run(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avss")
    ws.close()
    r = cli_here("clips", tmp_path / "ws", check=True)
    assert r.stdout == "" and f"avs-tools collect {tmp_path / 'ws'}" in r.stderr
    assert json.loads(cli_here("clips", tmp_path / "ws", "--json", check=True).stdout) == []

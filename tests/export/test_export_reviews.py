"""export after a Label Studio review: reviewed masks by default; a clip is released whole or not at
all (partly reviewed: left out unless --include-unreviewed fills the rest with proposals, never over a
reviewed frame; a frame marked unusable: left out, the card says why)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.export import CARD, ExportOptions, export
from avsbench_tools.mask_store import load_mask
from avsbench_tools.studio.pull import store_tasks
from avsbench_tools.workspace import open_workspace
from tests.helpers.studio_tasks import brush, build_workspace, cli, frame_choice, rect

KEY = "http://127.0.0.1:5#1"


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """Three pre-annotated MS3 clips: A reviewed whole (second 2 silent), B only in two seconds (0, and
    one whose proposal sounds, marked silent: the annotator removed it), C reviewed whole with second 3
    marked unusable. `proposals`: per (clip, second) the union of the sounding proposals."""
    root = tmp_path_factory.mktemp("exrev")
    path = build_workspace(root, clips=3)
    ws = open_workspace(path)
    a, b, c = (x.clip_id for x in ws.catalog.clips())
    proposals = {(x, s): np.zeros((120, 160), bool) for x in (a, b, c) for s in range(5)}
    for x in (a, b, c):
        for v in ws.catalog.mask_versions(x, ["proposal"]):
            if v.sounding is not False:
                proposals[(x, v.second)] |= load_mask(ws, v.path)
    b_silent = next(s for s in range(1, 5) if proposals[(b, s)].any())
    review = {(a, s): rect(10 * s, 0, 10 * s + 40, 50) for s in range(5)} | {(b, 0): rect(0, 60, 80, 120)}
    review |= {(c, s): rect(100, 10, 150, 40) for s in range(5)}
    silent = {(a, 2), (b, b_silent)}
    tasks, n = [], 0
    for clip, seconds in ((a, range(5)), (b, (0, b_silent)), (c, range(5))):
        for s in seconds:
            n += 1
            res = [brush("o0", review[(clip, s)], origin="prediction-changed")] if (clip, s) not in silent else []
            if (clip, s) in silent:
                res.append(frame_choice("no sounding object"))
            if (clip, s) == (c, 3):
                res.append(frame_choice("unusable frame"))
            tasks.append({"id": n, "data": {"clip_id": clip, "second": s, "ws_id": ws.catalog.studio_ws_id()},
                          "updated_at": "2026-03-01T00:00:00.000000Z",
                          "annotations": [{"id": n, "completed_by": 1, "result": res, "lead_time": 3.0,
                                           "updated_at": "2026-03-01T00:00:01.000000Z"}]})
    store_tasks(ws, KEY, tasks, users={1: "ann@example.com"})
    ws.close()
    return path, (a, b, c), review, silent, proposals


def _released(out: Path, clip: str) -> dict[int, np.ndarray]:
    (d,) = (out / "Multi-sources" / "ms3_data" / "gt_masks").glob(f"*/{clip}")
    return {k - 1: np.asarray(Image.open(d / f"{clip}_{k}.png")) > 0 for k in range(1, 6)}


def _at_release_size(m: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((224, 224), Image.NEAREST)) > 0


def test_reviewed_masks_by_default_partial_and_unusable_clips_left_out(reviewed, tmp_path):
    path, (a, b, c), review, silent, _ = reviewed
    ws = open_workspace(path)
    try:
        res = export(ws, tmp_path / "rel")
    finally:
        ws.close()
    assert res.clips == 1 and res.skipped_partial == [b] and res.skipped_unusable == {c: [3]}
    assert res.from_reviews == 4 and res.from_proposals == 0
    got = _released(tmp_path / "rel", a)
    for s in range(5):
        want = np.zeros((120, 160), bool) if (a, s) in silent else review[(a, s)]
        assert np.array_equal(got[s], _at_release_size(want)), s
    card = (tmp_path / "rel" / CARD).read_text()
    assert f"only some of their frames are reviewed: 1 ({b})" in card
    assert f"marked a frame 'unusable frame': 1 ({c} (second 3))" in card
    assert "holds exactly 5 frames" in card and "released whole or not at all" in card
    assert not list((tmp_path / "rel").rglob(f"*{c}*")) and not list((tmp_path / "rel").rglob(f"*{b}*"))


def test_include_unreviewed_fills_only_the_frames_nobody_reviewed(reviewed, tmp_path):
    path, (a, b, c), review, silent, proposals = reviewed
    ws = open_workspace(path)
    try:
        res = export(ws, tmp_path / "rel", ExportOptions(include_unreviewed=True))
    finally:
        ws.close()
    assert res.clips == 2 and res.skipped_partial == [] and res.skipped_unusable == {c: [3]}
    (b_silent,) = (s for x, s in silent if x == b)
    assert res.filled_seconds == 3 and res.from_reviews == 5 and res.from_proposals >= 3
    got = _released(tmp_path / "rel", b)
    assert np.array_equal(got[0], _at_release_size(review[(b, 0)]))
    assert proposals[(b, b_silent)].any() and not got[b_silent].any()  # a removed proposal does not come back
    for s in set(range(1, 5)) - {b_silent}:
        assert np.array_equal(got[s], _at_release_size(proposals[(b, s)])), s
    assert "filled with unreviewed proposals (--include-unreviewed): 3" in (tmp_path / "rel" / CARD).read_text()


def test_the_cli_says_which_clips_it_left_out(reviewed, tmp_path):
    path, (a, b, c), *_ = reviewed
    r = cli("export", path, tmp_path / "rel", "-q")
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("avs-tools: note:")]
    assert any(f"only some of their frames are reviewed ({b})" in n and "--include-unreviewed" in n for n in notes)
    assert any(f"marked 'unusable frame' in review ({c})" in n for n in notes)
    assert "export: 1 clips" in r.stdout


def test_refavs_expressions_from_the_review_and_null_expressions_reach_the_release(tmp_path):
    """Per-region texts become the expressions of their object (a hand-drawn object written with the same
    words in two frames is one object), null expressions set for the clip become test_n-style rows."""
    import csv

    from tests.helpers.studio_tasks import text

    path = build_workspace(tmp_path, clips=1, seconds=10, category="guitar")
    ws = open_workspace(path)
    try:
        (clip,) = (c.clip_id for c in ws.catalog.clips())
        tasks = []
        for s in range(10):
            res = [brush("o0", rect(10, 10, 50, 50), origin="prediction-changed"),
                   brush(f"hand{s}", rect(100, 60, 140, 100), label="piano")]
            if s in (0, 1):
                res.append(text(f"hand{s}", "the blue square  below the circle"))
            if s == 0:
                res.append(text("o0", "the red circle making the sound"))
            tasks.append({"id": s + 1, "data": {"clip_id": clip, "second": s, "ws_id": ws.catalog.studio_ws_id()},
                          "updated_at": "2026-03-01T00:00:00.000000Z",
                          "annotations": [{"id": s + 1, "completed_by": 1, "result": res,
                                           "updated_at": "2026-03-01T00:00:01.000000Z"}]})
        store_tasks(ws, KEY, tasks)
        ws.catalog.set_null_expressions({clip: ["the violin on the left"]})
        res = export(ws, tmp_path / "rel")
    finally:
        ws.close()
    assert res.clips == 1 and res.template_expressions == 8  # 8 hand-drawn objects of seconds 2-9 have no words
    with open(tmp_path / "rel" / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    exps = {(r["fid"], r["exp"]) for r in rows}
    assert ("0", "the red circle making the sound") in exps
    assert ("1000", "the blue square below the circle") in exps  # one object for both frames
    null = [r for r in rows if r["uid"].startswith("null")]
    assert [r["exp"] for r in null] == ["the violin on the left"]
    track = [np.asarray(Image.open(tmp_path / "rel" / "gt_mask" / rows[0]["vid"] / "fid_1000" / f"0000{t}.png"))
             for t in range(10)]
    assert [bool(m.any()) for m in track] == [True, True] + [False] * 8

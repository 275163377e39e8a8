"""pull without a server: Label Studio results -> reviewed masks, their provenance, fids, the choice
among annotators, partial pulls and null expressions (the server round trip is in test_pull.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.catalog import Expression
from avsbench_tools.mask_store import latest_masks, load_mask
from avsbench_tools.studio.convert import from_studio
from avsbench_tools.studio.pull import store_tasks
from avsbench_tools.studio.review_set import CHOICE_RULE, choose
from avsbench_tools.workspace import open_workspace
from tests.helpers.catalog_rows import put_expressions, stage_of
from tests.helpers.studio_tasks import (
    H,
    W,
    brush,
    build_workspace,
    frame_choice,
    rect,
    rle_of_alpha,
    soft_alpha,
    text,
)

KEY = "http://127.0.0.1:1#7"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("convert"))


@pytest.fixture
def ws(built, tmp_path):
    shutil.copytree(built, tmp_path / "ws")
    w = open_workspace(tmp_path / "ws")
    yield w
    w.close()


def _task(ws, tid: int, clip_id: str, second: int, anns: list[dict], updated: str = "2026-01-01T00:00:00.000000Z",
          predictions=()) -> dict:
    return {"id": tid, "data": {"clip_id": clip_id, "second": second, "ws_id": ws.catalog.studio_ws_id()},
            "updated_at": updated, "annotations": anns, "predictions": list(predictions)}


def _ann(aid: int, result: list[dict], *, user: int = 1, updated: str = "2026-01-01T00:00:01.000000Z",
         cancelled: bool = False, lead: float = 10.0, parent: int | None = None) -> dict:
    return {"id": aid, "result": result, "completed_by": user, "was_cancelled": cancelled, "lead_time": lead,
            "updated_at": updated, "created_at": updated, "parent_prediction": parent, "last_action": None}


def test_brush_alpha_is_binarised_at_128_and_the_threshold_recorded():
    m = rect(30, 20, 90, 70)
    alpha = soft_alpha(m, seed=1)
    partial = alpha[(alpha > 0) & (alpha < 255)]
    assert (partial < 128).sum() > 50 and (partial >= 128).sum() > 50  # anti-aliased on both sides of 128
    o = from_studio(brush("o2", alpha), second=3, fid=2, shape=(H, W))
    assert np.array_equal(o.mask, alpha >= 128) and np.array_equal(o.mask, m)
    assert o.evidence["alpha_threshold"] == 128 and o.evidence["origin"] == "manual"
    assert o.evidence["partial_alpha_pixels"] == int(((alpha > 0) & (alpha < 255)).sum()) > 0
    assert o.box == (30.0, 20.0, 90.0, 70.0) and o.category == "guitar" and (o.second, o.fid) == (3, 2)
    # exactly 128 is in, 127 out
    edge = np.zeros((H, W), np.uint8)
    edge[0, 0], edge[0, 1] = 128, 127
    assert from_studio(brush("x", edge), 0, 0, (H, W)).mask[0, :2].tolist() == [True, False]


def test_a_brush_of_another_size_is_scaled_to_the_frame_and_junk_is_refused():
    small = rect(0, 0, 40, 30, shape=(60, 80))
    o = from_studio(brush("o1", small), 0, 1, (H, W))
    assert o.mask.shape == (H, W) and np.array_equal(o.mask, rect(0, 0, 80, 60))
    with pytest.raises(ValueError, match="not a brush RLE"):
        from_studio({"id": "r", "type": "rectanglelabels", "value": {}}, 0, 1, (H, W))
    bad = brush("o1", small)
    bad["value"]["rle"] = rle_of_alpha(np.zeros((10, 10), np.uint8))  # 400 values for a 60x80 image
    with pytest.raises(ValueError):
        from_studio(bad, 0, 1, (H, W))


def test_regions_keep_prediction_fids_hand_drawn_ones_get_stable_new_fids(ws):
    clip = ws.catalog.clips()[0].clip_id
    res = [brush("o0", rect(10, 10, 40, 40), origin="prediction"), text("o0", "the red guitar"),
           brush("AbC123xyz", rect(100, 50, 140, 90), label="piano", origin="manual"),
           text("AbC123xyz", "the blue piano on the right"),
           brush("Zz9", rect(60, 60, 70, 70), origin="manual")]
    r = store_tasks(ws, KEY, [_task(ws, 1, clip, 0, [_ann(11, res)])], users={1: "ann@example.com"})
    assert (r.new, r.regions, r.cancelled) == (1, 3, 0)
    got = {v.evidence["region_id"]: v for v in latest_masks(ws, clip, ("review",))}
    assert got["o0"].fid == 0 and got["AbC123xyz"].fid == 1000 and got["Zz9"].fid == 1001
    assert got["AbC123xyz"].category == "piano" and got["o0"].author == "ann@example.com"
    assert np.array_equal(load_mask(ws, got["Zz9"].path), rect(60, 60, 70, 70))
    # the same hand-drawn object in the next frame, drawn again with the same words: the same object
    res2 = [brush("Qq1", rect(101, 50, 141, 90), label="piano"), text("Qq1", "The  blue piano on the right")]
    store_tasks(ws, KEY, [_task(ws, 2, clip, 1, [_ann(12, res2)])])
    assert {(v.second, v.fid) for v in latest_masks(ws, clip, ("review",))} == {(0, 0), (0, 1000), (0, 1001),
                                                                                  (1, 1000)}
    # the annotation is edited: a re-pull keeps its fids and replaces its mask files
    old_paths = {v.path for v in latest_masks(ws, clip, ("review",)) if v.second == 0}
    res[4] = brush("Zz9", rect(60, 60, 75, 75), origin="manual")
    r = store_tasks(ws, KEY, [_task(ws, 1, clip, 0, [_ann(11, res, updated="2026-01-02T00:00:00.000000Z")])])
    now = {v.evidence["region_id"]: v for v in latest_masks(ws, clip, ("review",)) if v.second == 0}
    assert (r.new, r.changed) == (0, 1) and now["Zz9"].fid == 1001 and np.array_equal(load_mask(ws, now["Zz9"].path), rect(60, 60, 75, 75))
    assert not any(ws.path(p).exists() for p in old_paths - {v.path for v in now.values()})
    exprs = {(e.fid, e.text) for e in ws.catalog.expressions(clip)}
    assert exprs == {(0, "the red guitar"), (1000, "the blue piano on the right")}
    assert {(o.fid, o.category) for o in ws.catalog.objects(clip)} >= {(0, "guitar"), (1000, "piano"), (1001, "guitar")}


def test_cancelled_counted_silent_frames_empty_unusable_flagged(ws):
    clip = ws.catalog.clips()[0].clip_id
    tasks = [_task(ws, 1, clip, 0, [_ann(21, [], cancelled=True)]),
             _task(ws, 2, clip, 1, [_ann(22, [brush("o0", rect(0, 0, 20, 20), origin="prediction"),
                                             frame_choice("no sounding object")])]),
             _task(ws, 3, clip, 2, [_ann(23, [brush("o0", rect(0, 0, 20, 20), origin=None), frame_choice("unusable frame")])])]
    r = store_tasks(ws, KEY, tasks)
    assert (r.new, r.cancelled, r.silent, r.unusable, r.dropped_regions, r.regions) == (2, 1, 1, 1, 1, 1)
    rows = {x.annotation_id: x for x in ws.catalog.studio_reviews([clip])}
    assert rows[21].status == "cancelled" and rows[21].regions == []
    assert ws.catalog.review_seconds(clip) == {1, 2}
    assert [(v.second, v.fid) for v in latest_masks(ws, clip, ("review",))] == [(2, 0)]
    assert ws.catalog.clip_flags(clip) == {1: {"silent"}, 2: {"unusable"}}
    assert stage_of(ws.catalog, clip, "pull").status == "partial"


def test_several_annotators_all_kept_the_latest_submitted_chosen(ws):
    clip = ws.catalog.clips()[1].clip_id
    a = _ann(31, [brush("o0", rect(10, 10, 50, 50))], user=1, updated="2026-01-01T00:00:05.000000Z", lead=4)
    b = _ann(32, [brush("o0", rect(20, 10, 60, 50))], user=2, updated="2026-01-01T00:00:09.000000Z", lead=6)
    c = _ann(33, [], user=2, updated="2026-01-01T00:00:20.000000Z", cancelled=True)
    store_tasks(ws, KEY, [_task(ws, 5, clip, 0, [a, b, c])], users={1: "a@x.org", 2: "b@x.org"})
    rows = ws.catalog.studio_reviews([clip])
    assert [x.annotation_id for x in rows] == [31, 32, 33] and choose(rows).annotation_id == 32
    (v,) = latest_masks(ws, clip, ("review",))
    assert v.author == "b@x.org" and v.evidence["annotators"] == 2 and np.array_equal(
        load_mask(ws, v.path), rect(20, 10, 60, 50))
    assert "latest submitted" in CHOICE_RULE


def test_partial_pulls_never_drop_the_seconds_pulled_before(ws):
    clip = ws.catalog.clips()[0].clip_id
    for s in range(5):  # one frame per pull, like an annotator's day
        r = store_tasks(ws, KEY, [_task(ws, 40 + s, clip, s, [_ann(40 + s, [brush("o0", rect(s, 0, s + 9, 9))])])])
        assert r.new == 1
        assert [v.second for v in latest_masks(ws, clip, ("review",))] == list(range(s + 1))
        assert ws.catalog.review_seconds(clip) == set(range(s + 1))
    assert stage_of(ws.catalog, clip, "pull").status == "done"
    # the same tasks again: nothing new
    again = store_tasks(ws, KEY, [_task(ws, 40 + s, clip, s, [_ann(40 + s, [brush("o0", rect(s, 0, s + 9, 9))])])
                                  for s in range(5)])
    assert (again.new, again.unchanged) == (0, 5)


def test_foreign_tasks_are_ignored(ws):
    clip = ws.catalog.clips()[0].clip_id
    t = _task(ws, 9, clip, 0, [_ann(90, [brush("o0", rect(0, 0, 5, 5))])])
    t["data"]["ws_id"] = "someone-else"
    other = _task(ws, 10, "no-such-clip", 0, [_ann(91, [])])
    r = store_tasks(ws, KEY, [t, other])
    assert (r.foreign, r.new) == (2, 0) and ws.catalog.studio_reviews() == []


def test_null_expressions_replace_only_the_clips_null_ones(ws):
    clip = ws.catalog.clips()[0].clip_id
    put_expressions(ws.catalog, clip, [Expression(clip, 0, 3, "the dog on the left"),
                                       Expression(clip, 1, None, "the violin", is_null=True)])
    ws.catalog.set_null_expressions({clip: ["the trumpet", "the cello", "the trumpet"]})
    got = [(e.fid, e.text, e.is_null) for e in ws.catalog.expressions(clip)]
    assert got == [(3, "the dog on the left", False), (None, "the trumpet", True), (None, "the cello", True)]
    ws.catalog.set_null_expressions({clip: []})
    assert [(e.fid, e.text) for e in ws.catalog.expressions(clip)] == [(3, "the dog on the left")]

"""Bounded proposals: class-aware NMS, the per-frame cap and the minimum mask area, alone and through the
whole preannotate command with a detector that floods every frame with 500 overlapping boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.masks import ObjectMask
from avsbench_tools.preannotate.nms import CapStats, bound_detections, large_enough
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import init_workspace
from tests.helpers import cli_here
from tests.helpers.tiny_models import tiny_hf_sam

pytest.importorskip("torchvision")


def _det(box, score, category="guitar", phrase=None) -> ObjectMask:
    return ObjectMask(0, -1, category, None, tuple(map(float, box)), score, evidence={"phrase": phrase or category})


def test_nms_is_per_category_and_follows_the_iou_threshold():
    a = _det((0, 0, 100, 100), 0.9)
    same = _det((0, 0, 100, 100), 0.8)  # the same box and category: suppressed
    other_cat = _det((0, 0, 100, 100), 0.7, "dog")  # the same box, another category: kept
    shifted = _det((0, 25, 100, 125), 0.6)  # IoU 75/125 = 0.6 with a
    kept = bound_detections([same, a, other_cat, shifted], nms_iou=0.8, max_objects=10)
    assert kept == [a, other_cat, shifted]  # most confident first
    kept = bound_detections([same, a, other_cat, shifted], nms_iou=0.5, max_objects=10)
    assert kept == [a, other_cat]
    # without a category, the phrase groups boxes
    p1, p2 = _det((0, 0, 10, 10), 0.5, None, "red"), _det((0, 0, 10, 10), 0.4, None, "blue")
    assert bound_detections([p1, p2], 0.8, 10) == [p1, p2]


def test_cap_keeps_the_most_confident_and_counts_the_frames_it_cut():
    boxes = [_det((20 * i, 0, 20 * i + 10, 10), s) for i, s in enumerate([0.3, 0.9, 0.1, 0.8, 0.5, 0.7, 0.2, 0.6])]
    stats = CapStats()
    kept = bound_detections(boxes, 0.8, 5, stats)
    assert [d.score for d in kept] == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert bound_detections(boxes[:3], 0.8, 5, stats) == [boxes[1], boxes[0], boxes[2]]
    assert bound_detections([], 0.8, 5, stats) == []
    assert (stats.frames, stats.capped, stats.most) == (3, 1, 8)


def test_min_area_is_a_fraction_of_the_frame():
    def obj(n):
        m = np.zeros((100, 100), bool)
        m.flat[:n] = True
        return ObjectMask(0, 0, "dog", m)

    objs = [obj(0), obj(9), obj(10), obj(500)]
    assert [int(o.mask.sum()) for o in large_enough(objs, 0.001)] == [10, 500]  # 10 px of 10,000
    assert [int(o.mask.sum()) for o in large_enough(objs, 0.0011)] == [500]
    assert [int(o.mask.sum()) for o in large_enough(objs, 0.0)] == [9, 10, 500]  # empty masks never


class BoxFlood:
    """A stand-in Grounding DINO: 500 overlapping boxes per frame, spread over the prompted categories."""

    sha, device = "0" * 16, "cpu"
    loads = 0

    def __init__(self, spec: str):
        self.name = spec  # as a loaded handle: the spec the user gave
        type(self).loads += 1

    def detect_batch(self, imgs, prompts, seconds, box_threshold, text_threshold):
        out = []
        for img, pr, s in zip(imgs, prompts, seconds, strict=True):
            h, w = img.shape[:2]
            rng = np.random.default_rng(s)
            cats = sorted(pr)
            dets = []
            for i in range(500):
                cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
                bw, bh = rng.uniform(0.2, 0.5) * w, rng.uniform(0.2, 0.5) * h
                cat = cats[i % len(cats)] if cats else None
                dets.append(ObjectMask(s, -1, cat, None, (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2),
                                       float(rng.uniform(0.36, 1.0)), evidence={"phrase": cat, "detector": "flood"}))
            out.append(dets)
        return out


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, world_ms3) -> Path:
    d = tmp_path_factory.mktemp("nms")
    ws, _ = init_workspace(d / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    ws.close()
    return d / "ws"


def test_a_flood_of_boxes_gives_at_most_max_objects_masks_per_frame(tmp_path, sampled, monkeypatch, capsys):
    from avsbench_tools.cli import run
    from avsbench_tools.preannotate import models

    sam = tiny_hf_sam(tmp_path / "sam")
    wsdir = tmp_path / "ws"
    shutil.copytree(sampled, wsdir)
    monkeypatch.setattr(models, "load_dino", lambda spec, *a, **k: BoxFlood(spec))
    BoxFlood.loads = 0
    argv = ["preannotate", str(wsdir), "-q", "--dino", "flood", "--sam", str(sam), "--device", "cpu",
            "--tracker", "none", "--max-objects", "3", "--min-area", "0"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert BoxFlood.loads == 1  # models are loaded once per run, not per clip
    assert "4 clips proposed" in out
    assert "cap hit: 20 of 20 frames had more than 3 proposals after NMS" in out, out
    assert "kept the 3 most confident (--max-objects)" in out
    rows = _rows(wsdir)
    assert len({r["settings_hash"] for r in rows}) == 1
    per_frame = _per_frame(rows)
    assert len(per_frame) == 20 and max(per_frame.values()) == 3  # 4 clips x 5 s, at most 3 masks each
    s = json.loads(rows[0]["settings_json"])
    assert (s["max_objects"], s["nms_iou"], s["min_area"], s["precision"]) == (3, 0.8, 0.0, "fp32")
    assert s["dino"]["id"] == "flood" and s["dino"]["sha256"] == "0" * 16
    assert min(r["score"] for r in rows) > 0.9  # the most confident of 500 uniform scores in [0.36, 1]
    # another cap is another settings set: a new version beside the first, not a skip
    assert run(argv[:-4] + ["--max-objects", "2", "--min-area", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 clips proposed" in out and "more than 2 proposals" in out
    new = [r for r in _rows(wsdir) if r["settings_hash"] != rows[0]["settings_hash"]]
    assert len(_per_frame(new)) == 20 and max(_per_frame(new).values()) == 2
    assert json.loads(new[0]["settings_json"])["max_objects"] == 2


def _rows(wsdir: Path) -> list:
    import sqlite3

    db = sqlite3.connect(wsdir / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT clip_id, second, fid, settings_hash, settings_json, score FROM mask_versions").fetchall()
    finally:
        db.close()


def _per_frame(rows) -> dict[tuple, int]:
    n: dict[tuple, int] = {}
    for r in rows:
        n[(r["clip_id"], r["second"])] = n.get((r["clip_id"], r["second"]), 0) + 1
    return n


def test_bounds_that_cannot_work_are_one_line_usage_errors(tmp_path, sampled):
    for flag, value, msg in (("--max-objects", "0", "must be at least 1"), ("--nms-iou", "0", "must be in (0, 1]"),
                             ("--min-area", "1", "in [0, 1)"), ("--precision", "fp16", "expected one of fp32, bf16")):
        r = cli_here("preannotate", sampled, "-q", "--dino", "x", "--sam", "y", flag, value)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and msg in lines[0] and flag in lines[0], r.stderr

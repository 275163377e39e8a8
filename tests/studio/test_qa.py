"""qa: every figure recomputed by hand from the masks the test itself wrote; the JSON and text output;
the HTML report opened in headless Chromium (the end-to-end run through a real server is in test_pull.py)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.mask_store import load_mask
from avsbench_tools.studio.pull import store_tasks
from avsbench_tools.studio.qa import qa
from avsbench_tools.workspace import open_workspace
from tests.helpers.browser import look_at_report
from tests.helpers.studio_tasks import brush, build_workspace, cli, frame_choice, rect

KEY = "http://127.0.0.1:9#3"


def iou(a, b) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Two clips reviewed every way an annotator can: A's five frames kept, edited, edited and relabelled,
    marked silent, and reviewed by two annotators (one drawing an object by hand); B's one skipped, one
    unusable, one with its object deleted in a second without sound, one relabelled only, one submitted
    twice by the same annotator (kept, then deleted).
    push's records (tasks, predictions -> mask versions) written as push writes them."""
    root = tmp_path_factory.mktemp("qa")
    path = build_workspace(root)
    ws = open_workspace(path)
    a, b = (c.clip_id for c in ws.catalog.clips())
    tasks, preds, tid = {}, [], 100
    for clip in (a, b):
        for v in ws.catalog.mask_versions(clip, ["proposal"]):
            tid += 1
            tasks[(clip, v.second)] = tid
            preds.append((tid, f"motion:{v.settings_hash}", 5000 + tid, [v.version_id]))
    ws.catalog.save_studio_tasks(KEY, [(c, s, t) for (c, s), t in tasks.items()])
    ws.catalog.save_studio_predictions(KEY, preds)
    prop = {(c, v.second): load_mask(ws, v.path) for c in (a, b) for v in ws.catalog.mask_versions(c, ["proposal"])}
    assert all(m.any() for m in prop.values())
    pred_of = {t: (pid, mv) for t, mv, pid, _ in preds}
    edit1 = prop[(a, 1)] | rect(0, 0, 30, 30)
    edit2 = prop[(a, 2)] & ~rect(0, 0, 160, 60)
    other4 = rect(40, 40, 100, 100)
    hand4 = rect(120, 80, 150, 110)
    plan = {  # (clip, second): [(annotation id, user, lead time, results, cancelled)]
        (a, 0): [(1, 1, 10.0, [brush("o0", prop[(a, 0)], origin="prediction")], False)],
        (a, 1): [(2, 1, 20.0, [brush("o0", edit1, origin="prediction-changed")], False)],
        (a, 2): [(3, 1, 30.0, [brush("o0", edit2, "piano", origin="prediction-changed")], False)],
        (a, 3): [(4, 1, 5.0, [brush("o0", prop[(a, 3)], origin="prediction"), frame_choice("no sounding object")],
                  False)],
        (a, 4): [(5, 1, 8.0, [brush("o0", prop[(a, 4)], origin="prediction")], False),
                 (6, 2, 12.0, [brush("o0", other4, origin="prediction-changed"), brush("hand1", hand4, "piano", "manual")], False)],
        (b, 0): [(7, 2, 2.0, [], True)],
        (b, 1): [(8, 2, 7.0, [brush("o0", prop[(b, 1)], origin="prediction"), frame_choice("unusable frame")], False)],
        (b, 2): [(9, 1, 4.0, [], False)],
        (b, 3): [(10, 1, 6.0, [brush("o0", prop[(b, 3)], "piano", origin="prediction-changed")], False)],
        (b, 4): [(11, 1, 3.0, [brush("o0", prop[(b, 4)], origin="prediction")], False),
                 (12, 1, 9.0, [], False)],  # the same annotator again: deleted it after all
    }
    batch = []
    for (clip, s), anns in plan.items():
        t = tasks[(clip, s)]
        pid, mv = pred_of[t]
        batch.append({"id": t, "data": {"clip_id": clip, "second": s}, "updated_at": "2026-02-01T00:00:00.000000Z",
                      "predictions": [{"id": pid, "model_version": mv}],
                      "annotations": [{"id": i, "completed_by": u, "lead_time": lt, "result": res, "was_cancelled": c,
                                       "parent_prediction": pid, "updated_at": f"2026-02-01T00:00:{i:02d}.000000Z",
                                       "created_at": "2026-02-01T00:00:00.000000Z"}
                                      for i, u, lt, res, c in anns]})
    store_tasks(ws, KEY, batch, users={1: "ann@example.com", 2: "two@example.com"})
    expect = {"prop": prop, "edit1": edit1, "edit2": edit2, "other4": other4, "hand4": hand4, "a": a, "b": b}
    ws.close()
    return path, expect


def test_qa_figures_equal_the_hand_computed_ones(scene):
    path, e = scene
    ws = open_workspace(path)
    try:
        rep = qa(ws)
    finally:
        ws.close()
    p, a, b = e["prop"], e["a"], e["b"]
    frames = {"sampled": 10, "pushed": 10, "reviewed": 9, "pending": 1, "skipped_only": 1, "silent": 1,
              "unusable": 1, "annotations": 11, "cancelled": 1, "without_known_proposal": 0}
    assert {k: rep.frames[k] for k in frames} == frames
    i1, i2, i4 = iou(p[(a, 1)], e["edit1"]), iou(p[(a, 2)], e["edit2"]), iou(p[(a, 4)], e["other4"])
    assert all(0 < x < 1 for x in (i1, i2, i4))
    # the synthetic sound: clip B is silent in seconds 1 and 2, active in 3 and 4 (clip A's second 3 is marked)
    assert _silent_seconds(path, b) >= {2} and not _silent_seconds(path, b) & {3, 4} and 3 not in _silent_seconds(path, a)
    outcomes = {(o.clip_id, o.second, o.fid): (o.outcome, None if o.iou is None else round(o.iou, 4), o.relabelled_to,
                                               o.silent) for o in rep.objects}
    assert outcomes == {
        (a, 0, 0): ("kept", 1.0, None, None), (a, 1, 0): ("edited", round(i1, 4), None, None),
        (a, 2, 0): ("edited", round(i2, 4), "piano", None), (a, 3, 0): ("deleted_silent", None, None, "marked"),
        (a, 4, 0): ("edited", round(i4, 4), None, None), (a, 4, 1000): ("added", None, None, None),
        (b, 2, 0): ("deleted_silent", None, None, "audio"), (b, 3, 0): ("kept", 1.0, "piano", None),
        (b, 4, 0): ("deleted", None, None, None)}
    rows = {(r["backend"], r["category"]): r for r in rep.by_backend}
    assert set(rows) == {("motion", "guitar"), ("motion", "piano")}
    g = rows[("motion", "guitar")]
    assert {k: g[k] for k in ("proposed", "unchanged", "kept", "edited", "relabelled", "deleted_silent", "deleted",
                              "added", "share_unchanged")} == {
        "proposed": 8, "unchanged": 1, "kept": 2, "edited": 3, "relabelled": 2, "deleted_silent": 2, "deleted": 1,
        "added": 0, "share_unchanged": 0.125}
    # the mean IoU is over kept and edited objects only: the three deletions do not count as bad outlines
    assert g["mean_iou"] == round(statistics.fmean([1.0, i1, i2, i4, 1.0]), 4)
    h = rows[("motion", "piano")]
    assert (h["proposed"], h["added"], h["mean_iou"], h["share_unchanged"]) == (0, 1, None, None)
    assert rep.relabels == [{"from": "guitar", "to": "piano", "objects": 2}]
    assert rep.origins == {"manual": 1, "prediction": 2, "prediction-changed": 4}
    leads = [10.0, 20.0, 30.0, 5.0, 8.0, 12.0, 7.0, 4.0, 6.0, 3.0, 9.0]
    assert rep.time == {"annotations_timed": 11, "mean_s": round(statistics.fmean(leads), 2),
                        "median_s": statistics.median(leads), "total_s": sum(leads),
                        "per_reviewed_frame_s": round(sum(leads) / 9, 2)}
    ag = rep.agreement  # (b, 4): two annotations by one annotator are no agreement
    assert (ag["frames"], ag["pairs"]) == (1, 1) and ag["per_frame"][0]["second"] == 4
    assert ag["mean_iou"] == round(iou(p[(a, 4)], e["other4"] | e["hand4"]), 4)
    assert ag["per_frame"][0]["chosen"] == "two@example.com" and "latest submitted" in ag["rule"]
    # frames changed most: only where something changed (not (a, 0) nor (b, 4)), lowest IoU first
    empty = np.zeros_like(p[(a, 3)])
    final = {(a, 1): e["edit1"], (a, 2): e["edit2"], (a, 3): empty, (a, 4): e["other4"] | e["hand4"], (b, 2): empty,
             (b, 3): p[(b, 3)], (b, 4): empty}
    by_hand = sorted((iou(p[k], f), -int((p[k] ^ f).sum()), k) for k, f in final.items())
    assert [((c.clip_id, c.second), round(c.iou, 6), -c.changed_pixels) for c in rep.most_changed] == [
        (k, round(v, 6), n) for v, n, k in by_hand]
    relabel_only = next(c for c in rep.most_changed if (c.clip_id, c.second) == (b, 3))
    assert relabel_only.changed_pixels == 0 and relabel_only.relabels == ["guitar -> piano"]
    assert {r["annotator"]: (r["submitted"], r["cancelled"]) for r in rep.annotators} == {
        "ann@example.com": (9, 0), "two@example.com": (2, 1)}


def _silent_seconds(path: Path, clip: str) -> set[int]:
    from avsbench_tools.audio.activity import Activity

    ws = open_workspace(path)
    try:
        active = Activity.from_dict(ws.catalog.audio(clip).activity).active
    finally:
        ws.close()
    return {s for s in range(5) if not active[s]}


def test_qa_cli_json_text_and_html(scene, tmp_path):
    path, e = scene
    r = cli("qa", path, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["frames"]["reviewed"] == 9 and data["agreement"]["frames"] == 1
    assert data["relabels"] == [{"from": "guitar", "to": "piano", "objects": 2}]
    assert {o["outcome"] for o in data["objects"]} == {"kept", "edited", "deleted", "deleted_silent", "added"}
    guitar = next(x for x in data["by_backend"] if x["category"] == "guitar")
    r = cli("qa", path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "9 reviewed, 1 pending of 10 pushed" in out and "latest submitted" in out
    assert "None" not in out and r.stdout.rstrip().endswith(f"avs-tools export {path} OUT")
    row = next(line.split() for line in out.splitlines() if line.split()[:2] == ["motion", "guitar"])
    assert row[2:] == ["8", "1", "2", "3", "2", "2", "1", "0", f"{guitar['mean_iou']:.3f}"], row
    assert "relabelled: guitar -> piano 2" in out
    assert "agreement (different annotators; frames annotated by two or more: 1): mean IoU" in out
    foreign = tmp_path / "notes.html"
    foreign.write_text("my own notes")
    r = cli("qa", path, "--html", foreign)
    assert r.returncode == 2 and "not written by avs-tools" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert foreign.read_text() == "my own notes"
    out = tmp_path / "qa.html"
    for _ in range(2):  # a report of ours may be replaced
        r = cli("qa", path, "--html", out, "-q")
        assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert page.count("<img ") == 3 * 7 and page.count("src='data:image/png;base64,") == 21
    assert "None" not in page and "mean_iou" not in page and "Mean IoU (kept + edited)" in page
    assert "<script" not in page and "<link" not in page  # self-contained
    _look(out, tmp_path / "qa.png")


def _look(page: Path, shot: Path) -> None:
    """Open the report in headless Chromium: every image decoded, the tables there; a screenshot kept."""
    look_at_report(page, shot, 21, ("What the review did to each proposed object", "Relabelled"), window="1366,768")

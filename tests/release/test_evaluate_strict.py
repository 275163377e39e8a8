"""evaluate scores only what it should: exact mask paths, single-channel masks of the right size and
range, missing predictions, the frames folder refused, splits that disagree said, frames counted."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.release_reader import read_release
from tests.helpers import cli_here


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _test_masks(gold: Path, fmt: str, split: str = "test") -> list[Path]:
    rel = read_release(gold, fmt)
    return [p for it in rel.items if it.split == split for _, p in sorted(it.masks.items())]


def _eval(*args, check=False):
    return cli_here("evaluate", *args, "-q", check=check)


def _json(*args) -> dict:
    r = _eval(*args, "--json", check=True)
    return json.loads(r.stdout)


def test_exact_copy_scores_one_and_states_the_frames(gold_s4, tmp_path):
    pred = _copy(gold_s4, tmp_path / "pred")
    n = len(_test_masks(gold_s4, "avsbench-s4"))
    assert n >= 5
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert res["frames"] == n and res["missing"] == 0 and res["warnings"] == []
    assert res["miou"] == pytest.approx(1.0) and res["fscore"] == 1.0 and res["fscore_batch_free"] == 1.0
    assert res["pred_values"] == "0/255 masks"
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred, check=True)
    assert f"{n} frames scored" in r.stdout and "mIoU               1.0000" in r.stdout
    # the inner folder works as --pred too (the same relative paths)
    res = _json("--format", "avsbench-s4", "--gt", gold_s4 / "Single-source", "--pred", pred / "Single-source")
    assert res["frames"] == n and res["miou"] == pytest.approx(1.0)


def test_one_altered_mask_scores_the_hand_computed_number(gold_s4, tmp_path):
    """The old test scored an export whose splits differ from gold's; this one checks a number by hand."""
    pred = _copy(gold_s4, tmp_path / "pred")
    masks = _test_masks(gold_s4, "avsbench-s4")
    gts = [np.asarray(Image.open(p)) > 0 for p in masks]
    full = [i for i, g in enumerate(gts) if g.any()]
    assert full, "the world has no sounding test frame"
    k = full[0]
    target = pred / masks[k].relative_to(gold_s4)
    Image.fromarray(np.zeros(gts[k].shape, np.uint8)).save(target)  # that frame predicted empty
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    n = len(masks)
    # every other frame is exact (IoU 1; an empty GT frame predicted empty also scores 1); the blanked one 0
    assert res["frames"] == n
    assert res["miou"] == pytest.approx((n - 1) / n)
    # F: frames with an empty GT are skipped; the blanked frame's curve is 0, the others reach 1
    assert res["fscore_batch_free"] == pytest.approx((len(full) - 1) / len(full))
    assert res["fscore_batch_size"] == 20 and n <= 20
    assert res["fscore"] == pytest.approx((len(full) - 1) / len(full))


def test_zero_one_masks_and_probabilities(gold_s4, tmp_path):
    masks = _test_masks(gold_s4, "avsbench-s4")
    pred = tmp_path / "pred01"
    for p in masks:  # a 0/1 prediction set
        q = pred / p.relative_to(gold_s4)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.asarray(Image.open(p)) > 0).astype(np.uint8)).save(q)
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert res["pred_values"] == "0/1 masks" and res["miou"] == pytest.approx(1.0) and res["fscore"] == 1.0
    prob = tmp_path / "prob"
    for p in masks:  # 8-bit probabilities: 129/255 > 0.5 is foreground, 127/255 is not
        q = prob / p.relative_to(gold_s4)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(np.asarray(Image.open(p)) > 0, 129, 127).astype(np.uint8)).save(q)
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", prob)
    assert res["pred_values"] == "8-bit probabilities (value/255)"
    # empty GT frames: every pixel at 127/255 < 0.5 is left empty -> 1; others exact -> 1
    assert res["miou"] == pytest.approx(1.0)


def test_rgb_frames_folder_is_refused(gold_s4):
    frames = gold_s4 / "Single-source" / "s4_data" / "visual_frames"
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", frames)
    assert r.returncode == 2, r.stdout
    assert "frames folder" in r.stderr and "visual_frames" in r.stderr and "Traceback" not in r.stderr
    assert "mIoU" not in r.stdout and len(r.stderr.strip().splitlines()) == 1


def test_frames_copied_elsewhere_score_nothing(gold_s4, tmp_path):
    """The old lookup by file name found <name>_<k>.png anywhere: a copy of the RGB frames 'scored' 0.37."""
    frames = _copy(gold_s4 / "Single-source" / "s4_data" / "visual_frames", tmp_path / "frames")
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", frames)
    assert r.returncode == 2 and "predicted masks missing" in r.stderr and "mIoU" not in r.stdout
    # and a tree whose split folders differ is not searched by file name either
    pred = tmp_path / "moved"
    for p in _test_masks(gold_s4, "avsbench-s4"):
        rel = p.relative_to(gold_s4 / "Single-source" / "s4_data" / "gt_masks" / "test")
        q = pred / "Single-source" / "s4_data" / "gt_masks" / "train" / rel
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2 and "predicted masks missing" in r.stderr


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_multichannel_prediction_is_refused_with_its_path(gold_s4, tmp_path, mode):
    pred = _copy(gold_s4, tmp_path / "pred")
    masks = _test_masks(gold_s4, "avsbench-s4")
    bad = pred / masks[2].relative_to(gold_s4)
    Image.open(bad).convert(mode).save(bad)
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2
    assert str(bad) in r.stderr and f"a {mode} image" in r.stderr and "not a mask" in r.stderr
    assert "Traceback" not in r.stderr


def test_wrong_size_is_refused_not_resized(gold_s4, tmp_path):
    pred = _copy(gold_s4, tmp_path / "pred")
    bad = pred / _test_masks(gold_s4, "avsbench-s4")[1].relative_to(gold_s4)
    Image.open(bad).resize((112, 112), Image.NEAREST).save(bad)
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "size 112x112" in r.stderr and "224x224" in r.stderr


def test_sixteen_bit_values_above_255_refused(gold_s4, tmp_path):
    pred = _copy(gold_s4, tmp_path / "pred")
    bad = pred / _test_masks(gold_s4, "avsbench-s4")[0].relative_to(gold_s4)
    Image.fromarray(np.full((224, 224), 1000, np.uint16)).save(bad)
    assert Image.open(bad).mode.startswith("I;16")
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2 and str(bad) in r.stderr and "values up to 1000" in r.stderr


def test_missing_predictions_error_then_allowed_and_scored_empty(gold_s4, tmp_path):
    pred = _copy(gold_s4, tmp_path / "pred")
    masks = _test_masks(gold_s4, "avsbench-s4")
    gts = [np.asarray(Image.open(p)) > 0 for p in masks]
    k = next(i for i, g in enumerate(gts) if g.any())
    gone = pred / masks[k].relative_to(gold_s4)
    gone.unlink()
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2
    assert f"1 of {len(masks)} predicted masks missing" in r.stderr and str(gone) in r.stderr
    assert "--allow-missing" in r.stderr
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred, "--allow-missing", check=True)
    assert f"missing: 1 of {len(masks)} predictions, scored as empty masks (first: {gone})" in r.stdout
    assert f"{len(masks)} frames scored" in r.stdout
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred, "--allow-missing")
    assert res["missing"] == 1 and res["missing_first"] == str(gone)
    assert res["miou"] == pytest.approx((len(masks) - 1) / len(masks))  # the empty guess of a sounding frame: 0


def test_disagreeing_splits_are_said(gold_s4, tmp_path):
    pred = _copy(gold_s4, tmp_path / "pred")
    meta = pred / "Single-source" / "s4_meta_data.csv"
    rows = list(csv.DictReader(open(meta)))
    moved = next(r for r in rows if r["split"] == "test")
    moved["split"] = "val"  # the prediction release files this clip under val; its files stay where --gt reads them
    with open(meta, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred, check=True)
    line = next(x for x in r.stdout.splitlines() if x.startswith("warning:"))
    assert f"{moved['name']}: test in --gt, val in --pred" in line
    res = _json("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert len(res["warnings"]) == 1 and res["miou"] == pytest.approx(1.0)
    # files where the prediction release's own split puts them: missing at --gt's paths, and the error says why
    masks = pred / "Single-source" / "s4_data" / "gt_masks"
    (masks / "val" / moved["category"]).mkdir(parents=True, exist_ok=True)
    shutil.move(masks / "test" / moved["category"] / moved["name"], masks / "val" / moved["category"] / moved["name"])
    r = _eval("--format", "avsbench-s4", "--gt", gold_s4, "--pred", pred)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "predicted masks missing" in r.stderr and "in another split in the --pred release" in r.stderr


def test_avss_class_indices_in_range(gold_avss, tmp_path):
    pred = _copy(gold_avss, tmp_path / "pred")
    n_classes = len(json.loads((gold_avss / "label2idx.json").read_text()))
    res = _json("--format", "avss", "--gt", gold_avss, "--pred", pred)
    masks = _test_masks(gold_avss, "avss")
    assert res["frames"] == len(masks) and res["classes"] == n_classes
    assert res["miou_present_classes"] == pytest.approx(1.0)
    bad = pred / masks[0].relative_to(gold_avss)
    arr = np.asarray(Image.open(bad)).copy()
    arr[0, 0] = n_classes  # one past the last class
    Image.fromarray(arr.astype(np.uint8)).save(bad)
    r = _eval("--format", "avss", "--gt", gold_avss, "--pred", pred)
    assert r.returncode == 2 and str(bad) in r.stderr and f"class index {n_classes} out of range" in r.stderr
    # an RGB label map (labels_rgb saved where labels_semantic belongs) is not a class-index mask
    shutil.copy(masks[0].parent.parent / "labels_rgb" / masks[0].name, bad)
    r = _eval("--format", "avss", "--gt", gold_avss, "--pred", pred)
    assert r.returncode == 2 and "a RGB image" in r.stderr and str(bad) in r.stderr


def test_refavs_copy_scores_one_at_256_and_accepts_256_predictions(world_10s, tmp_path):
    gold = world_10s / "gold"
    pred = _copy(gold, tmp_path / "pred")
    res = _json("--format", "ref-avs", "--gt", gold, "--pred", pred)
    scored = [s for s in res["splits"] if "J" in res[s]]
    assert scored
    for s in scored:
        assert res[s]["J"] == pytest.approx(1.0) and res[s]["F"] == pytest.approx(1.0)
    assert res["frames"] == sum(res[s]["frames"] for s in res["splits"]) > 0
    assert res["resolution"] == "256x256" and res["resized_predictions"] == res["frames"]
    # predictions at the official 256x256, made with the official mask rule, score the same
    rel = read_release(gold, "ref-avs")
    for it in rel.items:
        if it.split in res["splits"]:
            for p in it.masks.values():
                q = pred / p.relative_to(gold)
                m = Image.fromarray(np.where(np.asarray(Image.open(p)) > 0, 255, 0).astype(np.uint8))
                Image.fromarray(np.where(np.asarray(m.resize((256, 256), Image.BILINEAR)) > 0, 255, 0)
                                .astype(np.uint8)).save(q)
    res2 = _json("--format", "ref-avs", "--gt", gold, "--pred", pred)
    assert res2["resized_predictions"] == 0
    for s in scored:
        assert res2[s]["J"] == pytest.approx(1.0)
    # any other size is refused
    it = next(it for it in rel.items if it.split == scored[0])
    q = pred / it.masks[3].relative_to(gold)
    Image.open(q).resize((100, 80)).save(q)
    r = _eval("--format", "ref-avs", "--gt", gold, "--pred", pred)
    assert r.returncode == 2 and str(q) in r.stderr and "size 100x80" in r.stderr and "256x256" in r.stderr


@pytest.mark.parametrize("what", ["gt", "pred"])
def test_missing_or_file_release_is_one_line(gold_s4, tmp_path, what):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for bad in (tmp_path / "nope", f):
        args = {"gt": gold_s4, "pred": gold_s4, what: bad}
        r = _eval("--format", "avsbench-s4", "--gt", args["gt"], "--pred", args["pred"])
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"--{what} {bad}" in r.stderr and "Traceback" not in r.stderr

"""validate warns about releases that load but are probably wrong, and --json separates problems and warnings."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from avsbench_tools.release_reader import read_release
from avsbench_tools.validate import EXPECTED_SPLITS
from tests.helpers import cli_here


def _validate_json(root: Path, fmt: str) -> tuple[int, dict]:
    r = cli_here("validate", root, "--format", fmt, "--json", "-q")
    return r.returncode, json.loads(r.stdout)


def _write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _s4_set_category(root: Path, category: str) -> int:
    """Give every S4 row one category, moving its files where the loader will look for them."""
    base = root / "Single-source"
    d = base / "s4_data"
    rows = list(csv.DictReader(open(base / "s4_meta_data.csv")))
    for r in rows:
        old, split, name = r["category"], r["split"], r["name"]
        for kind in ("visual_frames", "gt_masks"):
            (d / kind / split / category).mkdir(parents=True, exist_ok=True)
            shutil.move(d / kind / split / old / name, d / kind / split / category / name)
        for kind, ext in (("audio_wav", "wav"), ("audio_log_mel", "pkl")):
            src = d / kind / split / old / f"{name}.{ext}"
            if src.exists():
                (d / kind / split / category).mkdir(parents=True, exist_ok=True)
                shutil.move(src, d / kind / split / category / f"{name}.{ext}")
        r["category"] = category
    _write_rows(base / "s4_meta_data.csv", rows)
    return len(rows)


def test_json_separates_problems_and_warnings(world_ms3, tmp_path):
    rc, res = _validate_json(world_ms3 / "gold", "avsbench-ms3")
    assert rc == 0 and res["problems"] == [] and isinstance(res["warnings"], list)
    rel = shutil.copytree(world_ms3 / "gold", tmp_path / "r")
    frame = next((rel / "Multi-sources" / "ms3_data" / "visual_frames").rglob("*.mp4_2.png"))
    frame.unlink()
    rc, res = _validate_json(rel, "avsbench-ms3")
    assert rc == 1 and {"path": str(frame), "problem": "missing"} in res["problems"]
    assert all(set(p) == {"path", "problem"} for p in res["problems"])


def test_empty_masks_warn_but_do_not_fail(gold_s4, tmp_path):
    rel = shutil.copytree(gold_s4, tmp_path / "r")
    masks = sorted((rel / "Single-source" / "s4_data" / "gt_masks").rglob("*.png"))
    for p in masks:
        Image.fromarray(np.zeros((224, 224), np.uint8)).save(p)
    rc, res = _validate_json(rel, "avsbench-s4")
    n_clips = len(read_release(rel, "avsbench-s4").items)
    assert rc == 0 and res["problems"] == []
    assert f"most masks are empty: {len(masks)} of {len(masks)} hold no sounding object" in res["warnings"]
    assert any(w.startswith(f"{n_clips} of {n_clips} clips have no sounding frame") for w in res["warnings"])
    r = cli_here("validate", rel, "--format", "avsbench-s4")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert f"warning: most masks are empty: {len(masks)} of {len(masks)} hold no sounding object" in lines
    assert lines[-2].startswith("validate: ") and f"{len(res['warnings'])} warnings" in lines[-2]
    assert lines[-1] == f"next: avs-tools stats {rel} --format avsbench-s4 --out report.html"
    r = cli_here("validate", rel, "--format", "avsbench-s4", "--quiet")
    assert r.returncode == 0 and "next:" not in r.stdout and "warning: most masks" in r.stdout


def test_one_mask_in_three_empty_is_not_most(gold_s4):
    rc, res = _validate_json(gold_s4, "avsbench-s4")
    rel = read_release(gold_s4, "avsbench-s4")
    masks = [p for it in rel.items for p in it.masks.values()]
    empty = sum(1 for p in masks if not np.asarray(Image.open(p)).any())
    assert rc == 0
    assert any(w.startswith("most masks are empty") for w in res["warnings"]) == (empty * 2 > len(masks))


def test_unknown_and_single_category(gold_s4, tmp_path):
    rel = shutil.copytree(gold_s4, tmp_path / "unknown")
    n = _s4_set_category(rel, "unknown")
    rc, res = _validate_json(rel, "avsbench-s4")
    assert rc == 0 and res["problems"] == []
    assert any(w.startswith(f"{n} of {n} rows have category 'unknown'") for w in res["warnings"])
    rel = shutil.copytree(gold_s4, tmp_path / "single")
    _s4_set_category(rel, "guitar")
    rc, res = _validate_json(rel, "avsbench-s4")
    assert rc == 0 and res["problems"] == []
    assert f"a single category: all {n} rows are 'guitar'" in res["warnings"]
    rc, res = _validate_json(gold_s4, "avsbench-s4")
    assert not any("category" in w for w in res["warnings"])  # the world has several categories


def test_identical_expressions(world_10s, tmp_path):
    rel = shutil.copytree(world_10s / "gold", tmp_path / "r")
    rc, res = _validate_json(rel, "ref-avs")
    assert rc == 0 and not any("identical" in w for w in res["warnings"])
    rows = list(csv.DictReader(open(rel / "metadata.csv")))
    for r in rows:
        if not r["uid"].startswith("null"):
            r["exp"] = "the object"
    _write_rows(rel / "metadata.csv", rows)
    rc, res = _validate_json(rel, "ref-avs")
    n = sum(1 for r in rows if not r["uid"].startswith("null"))
    assert rc == 0 and res["problems"] == []
    assert f"all {n} expressions are identical ('the object')" in res["warnings"]


def test_splits_with_no_clips(world_10s, gold_s4, tmp_path):
    rc, res = _validate_json(world_10s / "gold", "ref-avs")
    present = {it.split for it in read_release(world_10s / "gold", "ref-avs").items}
    for s in EXPECTED_SPLITS["ref-avs"]:
        assert (f"split {s} has no clips" in res["warnings"]) == (s not in present)
    assert set(EXPECTED_SPLITS["ref-avs"]) - present, "the world was meant to lack a Ref-AVS split"
    # S4 without its val rows (and their files): validate passes and warns
    rel = shutil.copytree(gold_s4, tmp_path / "r")
    base = rel / "Single-source"
    rows = list(csv.DictReader(open(base / "s4_meta_data.csv")))
    assert any(r["split"] == "val" for r in rows)
    _write_rows(base / "s4_meta_data.csv", [r for r in rows if r["split"] != "val"])
    for kind in ("visual_frames", "gt_masks", "audio_wav", "audio_log_mel"):
        shutil.rmtree(base / "s4_data" / kind / "val", ignore_errors=True)
    rc, res = _validate_json(rel, "avsbench-s4")
    assert rc == 0 and res["problems"] == [] and "split val has no clips" in res["warnings"]


def test_avss_background_only(gold_avss, tmp_path):
    rel = shutil.copytree(gold_avss, tmp_path / "r")
    rc, res = _validate_json(rel, "avss")
    assert rc == 0 and not any("empty" in w or "no sounding" in w for w in res["warnings"])
    for p in rel.rglob("labels_semantic/*.png"):
        Image.fromarray(np.zeros(np.asarray(Image.open(p)).shape, np.uint8)).save(p)
    for p in rel.rglob("labels_rgb/*.png"):
        Image.fromarray(np.zeros((*np.asarray(Image.open(p)).shape[:2], 3), np.uint8)).save(p)
    rows = list(csv.DictReader(open(rel / "metadata.csv")))
    for r in rows:
        r["a_obj"] = "background"
    _write_rows(rel / "metadata.csv", rows)
    rc, res = _validate_json(rel, "avss")
    n = len(list(rel.rglob("labels_semantic/*.png")))
    assert rc == 0 and res["problems"] == []
    assert f"most label maps are empty: {n} of {n} hold no sounding object" in res["warnings"]
    assert f"{len(rows)} of {len(rows)} rows name no sounding object (a_obj empty or background)" in res["warnings"]


def test_missing_release_is_one_line(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for bad, why in ((tmp_path / "nope", "no such folder"), (f, "is not a folder"), (tmp_path, "no metadata.csv")):
        r = cli_here("validate", bad, "--format", "ref-avs")
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"avs-tools: error: {bad}: {why} " + (
            "(give the release root)" if why != "no metadata.csv" else "(not a release root in the ref-avs layout)")]

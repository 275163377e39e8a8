"""FPR and G-mIoU / G-F on negative-audio sets: the definitions, `evaluate` on predictions a test makes, and
`release-check` predicting the sets with its audio run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.negative_audio import frame_fpr, harmonic, summarise, verdict, write_negative_sets
from avsbench_tools.release_reader import read_release
from tests.helpers import run_cli

FMT = "avsbench-s4"


def test_definitions():
    assert harmonic(0.8, 1.0) == pytest.approx(2 * 0.8 / 1.8)
    assert harmonic(0.0, 0.0) == 0.0 and harmonic(None, 0.5) is None
    prob = np.zeros((4, 5), np.float32)
    prob[0, :] = 0.9  # 5 of 20 pixels above 0.5
    prob[1, :] = 0.5  # not above
    assert frame_fpr(prob, semantic=False) == pytest.approx(0.25)
    assert frame_fpr(np.array([[0, 3], [0, 0]]), semantic=True) == pytest.approx(0.25)
    s = summarise({"silence": {"fpr": 0.0, "frames": 10, "missing": 0},
                   "noise": {"fpr": 0.3, "frames": 30, "missing": 0}}, miou=0.6, fscore=0.7)
    assert s["fpr"] == pytest.approx(0.225)  # weighted by frames
    assert s["g_miou"] == pytest.approx(2 * 0.6 * 0.775 / (0.6 + 0.775))
    assert s["sets"]["noise"]["g_f"] == pytest.approx(2 * 0.7 * 0.7 / 1.4)
    assert verdict(s)["verdict"] == "yes"  # noise FPR 0.3 > 0.05 over 40 frames
    s2 = summarise({"silence": {"fpr": 0.01, "frames": 40, "missing": 0}}, 0.6, 0.7)
    assert verdict(s2)["verdict"] == "no"
    assert verdict(summarise({"silence": {"fpr": 0.5, "frames": 5, "missing": 0}}, 0.6, 0.7))["verdict"].startswith(
        "cannot tell")


@pytest.fixture(scope="module")
def s4_with_negatives(gold_releases, tmp_path_factory) -> Path:
    from avsbench_tools.recipe import load_recipe

    rel = tmp_path_factory.mktemp("negrel") / "rel"
    shutil.copytree(gold_releases[FMT], rel)
    write_negative_sets(rel, FMT, ["silence", "noise", "offscreen"], 1,
                        load_recipe(gold_releases[FMT].parent / "recipe.toml"))
    return rel


def test_evaluate_reports_fpr_and_g_metrics(s4_with_negatives, tmp_path):
    """Perfect positive predictions; silence: nothing predicted; noise and offscreen: the positive clip's mask
    (a model that segments the object whatever it hears)."""
    rel = s4_with_negatives
    pred = tmp_path / "pred"
    pos = read_release(rel, FMT)
    fg = 0
    total = 0
    for it in pos.items:
        for gp in it.masks.values():
            dst = pred / gp.relative_to(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(gp, dst)
    by_name = {it.name: it for it in pos.items}
    for kind in ("silence", "noise", "offscreen"):
        root = rel / "negative-audio" / kind
        for it in read_release(root, FMT).items:
            for sec, gp in it.masks.items():
                dst = pred / "negative-audio" / kind / gp.relative_to(root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                m = np.asarray(Image.open(by_name[it.name].masks[sec]))
                if kind == "silence":
                    m = np.zeros_like(m)
                else:
                    fg += int((m > 127).sum())
                total += m.size
                Image.fromarray(m).save(dst)
    r = run_cli("evaluate", "--format", FMT, "--gt", rel, "--pred", pred, "--json", "-q")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    neg = res["negative_audio"]
    assert res["miou"] == pytest.approx(1.0)
    assert neg["sets"]["silence"]["fpr"] == 0.0
    assert neg["fpr"] == pytest.approx(fg / total)
    assert neg["g_miou"] == pytest.approx(2 * res["miou"] * (1 - neg["fpr"]) / (res["miou"] + 1 - neg["fpr"]))
    assert neg["g_f"] == pytest.approx(2 * res["fscore"] * (1 - neg["fpr"]) / (res["fscore"] + 1 - neg["fpr"]))
    text = run_cli("evaluate", "--format", FMT, "--gt", rel, "--pred", pred, "-q")
    assert "negative audio" in text.stdout and "G-mIoU" in text.stdout
    assert "segments objects that are not sounding: cannot tell" in text.stdout  # 15 negative frames
    # a negative prediction missing: one line naming it, or scored empty with --allow-missing
    victim = next((pred / "negative-audio" / "noise").rglob("*.png"))
    victim.unlink()
    r = run_cli("evaluate", "--format", FMT, "--gt", rel, "--pred", pred, "-q")
    assert r.returncode == 2 and victim.name in r.stderr and "Traceback" not in r.stderr


def test_release_check_predicts_the_negative_sets(s4_with_negatives, tmp_path):
    """The audio run's best checkpoint predicts each negative set (a budget of 2 s: at least one epoch a run, which
    is all that scoring the sets needs)."""
    out = tmp_path / "check"
    r = run_cli("release-check", s4_with_negatives, "--format", FMT, "--out", out, "--budget", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    neg = rep["negative_audio"] if "negative_audio" in rep else rep["summary"]["negative_audio"]
    assert set(neg["sets"]) == {"silence", "noise", "offscreen"}
    assert all(0.0 <= v["fpr"] <= 1.0 and v["frames"] == 5 for v in neg["sets"].values())
    assert "FPR" in r.stdout and "segments objects that are not sounding" in r.stdout
    page = (out / "index.html").read_text()
    assert "Segments objects that are not sounding" in page and "G-mIoU" in page

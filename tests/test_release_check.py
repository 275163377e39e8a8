"""release-check: validate + stats + trivial predictors + two short baseline runs (audio / no audio) ->
index.html (self-contained, looked at in headless Chromium) and report.json."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from browser import look_at_report
from conftest import run_cli

sys.path.insert(0, str(Path(__file__).parent / "baselines"))
from worlds import he_vggish, make_world  # noqa: E402 - tests/baselines/worlds.py


@pytest.fixture(scope="module")
def s4(tmp_path_factory):
    return make_world(tmp_path_factory, clips=8, seconds=5, width=96, height=64, seed=4, gold="avsbench-s4") / "gold"


@pytest.fixture(scope="module")
def checked(s4, tmp_path_factory):
    vggish = he_vggish(tmp_path_factory.getbasetemp() / "baseline-worlds" / "vggish_he.pth")
    out = tmp_path_factory.mktemp("check") / "check"
    args = ["release-check", s4, "--format", "avsbench-s4", "--out", out, "--budget", "20", "--device", "cpu",
            "--vggish-weights", vggish]
    t0 = time.monotonic()
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return out, args, r, time.monotonic() - t0


def test_report_says_learnable_and_audio_with_numbers(checked):
    out, _, r, _ = checked
    rep = json.loads((out / "report.json").read_text())
    assert rep["format"] == "avsbench-s4" and rep["eval_split"] == "test"
    assert set(rep["trivial"]) == {"all-empty", "all-full", "mean-mask"}
    assert set(rep["runs"]) == {"audio", "no-audio"}
    assert rep["runs"]["audio"]["epochs"] == rep["runs"]["no-audio"]["epochs"] >= 1  # same epochs, only audio differs
    from avsbench_tools.baselines.data import open_release
    from avsbench_tools.release_check.stage import MIN_CLIPS

    n_test = len(open_release(Path(rep["release"]), "s4", ("test",)).items("test"))
    if n_test < MIN_CLIPS:  # this small world: no verdict, the numbers still given
        assert rep["learnable"]["verdict"] == rep["audio_helps"]["verdict"] == (
            f"cannot tell: the test split has {n_test} clip{'s' if n_test != 1 else ''} (a verdict needs {MIN_CLIPS})")
    else:
        assert rep["learnable"]["verdict"] in ("yes", "no")
    assert "trivial" in rep["learnable"]["why"]
    best_trivial = max(t["miou"] for t in rep["trivial"].values())
    assert abs(rep["learnable"]["margin"] - (rep["runs"]["audio"]["test"]["miou"] - best_trivial)) < 1e-9
    d = rep["runs"]["audio"]["test"]["miou"] - rep["runs"]["no-audio"]["test"]["miou"]
    assert abs(rep["audio_helps"]["difference"] - d) < 1e-9
    assert rep["per_category"]["available"] and rep["per_category"]["unit"] == "clips"
    assert rep["worst_clips"] and all(Path(out / "overlays" / f"{c['name']}.png").is_file() for c in rep["worst_clips"])
    assert any("no ImageNet weights" in w for w in rep["warnings"])  # said in the report, loudly
    assert (out / "stats.html").is_file() and (out / "runs" / "audio" / "curves.png").is_file()
    assert "learnable:" in r.stdout and "audio helps:" in r.stdout and r.stdout.strip().endswith("index.html")


def test_index_html_is_self_contained_and_renders(checked, tmp_path):
    out = checked[0]
    page = (out / "index.html").read_text()
    assert "<script" not in page and "<link" not in page and 'content="avs-tools release-check' in page
    n_img = page.count("<img ")
    assert n_img == page.count("src='data:image/png;base64,") and n_img >= 3
    look_at_report(out / "index.html", tmp_path / "release-check.png", n_img,
                   ("Learnable:", "Audio helps:", "trivial: all-empty"), window="1300,2600")




def test_verdicts_need_enough_clips_and_margins():
    from avsbench_tools.release_check.stage import AUDIO_MARGIN, LEARNABLE_MARGIN, MIN_CLIPS, verdicts

    trivial = {"all-empty": {"miou": 0.30}, "all-full": {"miou": 0.10}}
    v = verdicts(0.30 + LEARNABLE_MARGIN + 0.01, 0.30, trivial, MIN_CLIPS, "test", True)
    assert v["learnable"]["verdict"] == "yes" and "(all-empty) 0.3000" in v["learnable"]["why"]
    assert v["audio_helps"]["verdict"] == "yes" and abs(v["audio_helps"]["difference"] - (LEARNABLE_MARGIN + 0.01)) < 1e-12
    v = verdicts(0.32, 0.32 + AUDIO_MARGIN, trivial, 40, "test", False)
    assert v["learnable"]["verdict"] == "no" and v["audio_helps"]["verdict"] == "no: the no-audio run does better"
    assert "random VGGish" in v["audio_helps"]["why"]
    assert verdicts(0.31, 0.30, trivial, 40, "val", True)["audio_helps"]["verdict"] == "no clear difference"
    v = verdicts(0.9, 0.1, trivial, 1, "test", True)
    assert v["learnable"]["verdict"] == v["audio_helps"]["verdict"] == (
        f"cannot tell: the test split has 1 clip (a verdict needs {MIN_CLIPS})")
    assert abs(v["learnable"]["margin"] - 0.6) < 1e-12  # the numbers are still there


def test_rerun_keeps_finished_runs_other_options_need_force(checked):
    out, args, _, first = checked
    before = (out / "runs" / "audio" / "done.json").stat().st_mtime
    t0 = time.monotonic()
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert (out / "runs" / "audio" / "done.json").stat().st_mtime == before  # not trained again
    assert time.monotonic() - t0 < first
    r = run_cli(*args[:-2], "--budget", "30")
    assert r.returncode == 2 and "holds a release-check of another release or other options" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_broken_release_reports_problems_and_trains_nothing(s4, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(s4, broken)
    victim = next((broken / "Single-source" / "s4_data" / "visual_frames").rglob("*_3.png"))
    victim.unlink()
    out = tmp_path / "check"
    r = run_cli("release-check", broken, "--format", "avsbench-s4", "--out", out, "--device", "cpu")
    assert r.returncode == 1, r.stderr
    assert "validation problems; no training" in r.stdout and "avs-tools validate" in r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["validation"]["problem_count"] >= 1 and "runs" not in rep
    assert any(p["path"] == str(victim.resolve()) or p["path"] == str(victim) for p in rep["validation"]["problems"])
    assert "validate found" in (out / "index.html").read_text() and not (out / "runs").exists()


def test_bad_arguments_are_one_line(s4, tmp_path):
    cases = [
        (["--format", "avsbench-ms3"], "not a release root in the avsbench-ms3 layout"),
        (["--format", "ref-avs"], "release-check trains the TPAVI baseline"),
        (["--format", "coco"], "--format coco: expected one of"),
        (["--format", "avsbench-s4", "--vggish-weights", tmp_path / "v.pth"], "--vggish-weights"),
    ]
    for extra, needle in cases:
        r = run_cli("release-check", s4, "--out", tmp_path / "c", "--device", "cpu", *extra)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
        assert not (tmp_path / "c").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    r = run_cli("release-check", s4, "--format", "avsbench-s4", "--out", tmp_path / "mine", "--device", "cpu")
    assert r.returncode == 2 and "did not write" in r.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"

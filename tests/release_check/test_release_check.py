"""release-check: validate + stats + trivial predictors + two short baseline runs (audio / no audio) ->
index.html (self-contained, looked at in headless Chromium) and report.json."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.browser import look_at_report
from tests.helpers.worlds import he_vggish, make_world


@pytest.fixture(scope="module")
def s4(tmp_path_factory):
    return make_world(tmp_path_factory, clips=8, seconds=5, width=96, height=64, seed=4, gold="avsbench-s4") / "gold"


@pytest.fixture(scope="module")
def checked(s4, tmp_path_factory):
    """A release-check of the 8-clip S4 world with a budget of 8 s (4 s a run: a few epochs of the CPU plan's
    quarter-width ResNet-18 on this world's few training clips; the report's numbers and page are checked against
    what it trained, whatever the epochs; before, 20 s bought nothing more to check)."""
    vggish = he_vggish(tmp_path_factory.getbasetemp() / "baseline-worlds" / "vggish_he.pth")
    out = tmp_path_factory.mktemp("check") / "check"
    args = ["release-check", s4, "--format", "avsbench-s4", "--out", out, "--budget", "8", "--device", "cpu",
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
    from avsbench_tools.baselines.dataset import open_release
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
    rep = json.loads((out / "report.json").read_text())
    curves = sum(1 for r in rep["runs"].values() if r["epochs"] >= 2)  # fewer epochs: a note instead (a loaded box)
    assert n_img == page.count("src='data:image/png;base64,") == curves + len(rep["worst_clips"]) >= 1
    assert page.count("too few for a training curve") == len(rep["runs"]) - curves
    look_at_report(out / "index.html", tmp_path / "release-check.png", n_img,
                   ("Learnable:", "Audio helps:", "trivial: all-empty"), window="1300,2600")




def _clips(values, frames=5):
    """Per-clip stats (S4/MS3 layout: [IoU sum, frames]) of clips whose frames all score `value`."""
    return [[v * frames, frames] for v in values]


def _run(values):
    import numpy as np

    return {"miou": float(np.mean(values)), "clip_stats": _clips(values)}


def test_verdicts_need_margins_larger_than_their_spread():
    """Issue 21 (one seed said "learnable: no" and "audio helps: yes"): verdicts come from margins larger than their
    bootstrap spread over the clips, "audio helps" is asked only of a learnable model, else "cannot tell"."""
    import numpy as np

    from avsbench_tools.release_check.stage import AUDIO_MARGIN, LEARNABLE_MARGIN, MIN_CLIPS, verdicts

    rng = np.random.default_rng(0)
    n = 40
    trivial = {"all-empty": _run(np.full(n, 0.30)), "all-full": _run(np.full(n, 0.10))}
    good = 0.30 + LEARNABLE_MARGIN + 0.10 + rng.normal(0, 0.02, n)  # far above, little spread
    v = verdicts(_run(good), _run(good - 0.08), trivial, n, "test", "enc")
    assert v["learnable"]["verdict"] == "yes" and "(all-empty) 0.3000" in v["learnable"]["why"]
    lo, hi = v["learnable"]["interval"]
    assert 0 < lo < v["learnable"]["margin"] < hi and "95% interval over the clips" in v["learnable"]["why"]
    assert v["audio_helps"]["verdict"] == "yes" and v["audio_helps"]["interval"][0] > 0
    assert v["audio_helps"]["verdict"] == "yes" and "enc" in v["audio_helps"]["why"]
    v = verdicts(_run(good), _run(good + 0.08), trivial, n, "test", "enc")
    assert v["audio_helps"]["verdict"] == "no: the no-audio run does better"
    v = verdicts(_run(good), _run(good + rng.normal(0, 0.001, n)), trivial, n, "test", "enc")
    assert v["audio_helps"]["verdict"] == "no clear difference"
    # the same mean margins with a wide spread over the clips: cannot tell, not yes
    noisy = 0.30 + LEARNABLE_MARGIN + 0.02 + np.resize([0.35, -0.35], n)  # mean margin +0.07, clips +-0.35
    v = verdicts(_run(noisy), _run(noisy - 2 * AUDIO_MARGIN * rng.random(n)), trivial, n, "test", "enc")
    assert v["learnable"]["verdict"].startswith("cannot tell: the margin"), v
    assert v["audio_helps"]["verdict"].startswith("cannot tell: the model is not shown to learn")
    # the seed 11: below the best trivial predictor and "+0.0380" with audio: never "audio helps: yes"
    low = np.clip(0.038 + rng.normal(0, 0.03, 9), 0, 1)
    v = verdicts(_run(low), _run(low - 0.038), {"mean-mask": _run(np.full(9, 0.0719))}, 9, "test", "enc", 16)
    assert v["learnable"]["verdict"] == "no" and v["audio_helps"]["verdict"].startswith("cannot tell")
    v = verdicts(_run(low), _run(low - 0.038), {"mean-mask": _run(np.full(9, 0.0719))}, 9, "test", "enc", 1)
    assert v["learnable"]["verdict"].startswith("cannot tell: 1 epoch of training, too few")  # not "no" after 1
    v = verdicts(_run(np.full(1, 0.9)), _run(np.full(1, 0.1)), trivial | {}, 1, "test", "enc")
    assert v["learnable"]["verdict"] == v["audio_helps"]["verdict"] == (
        f"cannot tell: the test split has 1 clip (a verdict needs {MIN_CLIPS})")


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


def test_ctrl_c_then_the_same_command_keeps_the_finished_run_and_counts_runs_and_epochs(s4, tmp_path):
    """Row: Ctrl-C in release-check, then the same command: the finished audio run was trained again with a fresh
    budget and the message read "0 done, 500 left" (500 = the epoch cap). Now the finished run is kept and the
    message counts runs, and epochs of the run that was going (its kept epochs, and the audio run's count).
    The check is held (cli/bars.py's test-only hold) at the no-audio run's first training step, the audio run done,
    so the Ctrl-C arrives there whatever the machine's speed; a budget of 4 s (2 s a run) gives the runs the epochs
    they count."""
    import os
    import signal
    import subprocess

    from avsbench_tools.release_check.plan import MAX_EPOCHS

    out = tmp_path / "check"
    args = ["release-check", s4, "--format", "avsbench-s4", "--out", out, "--budget", "4", "--device", "cpu", "-q"]
    hold = tmp_path / "hold"
    hold.touch()
    # the audio run's epochs are counted against the cap (epoch k/500), the no-audio run's against the audio run's
    proc = subprocess.Popen([sys.executable, "-m", "avsbench_tools", *map(str, args)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", AVS_TOOLS_TEST_HOLD=str(hold),
                                     AVS_TOOLS_TEST_HOLD_MATCH=rf"^training epoch 1/(?!{MAX_EPOCHS} )"))
    end = time.monotonic() + 300
    while not (tmp_path / "hold.held").is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.05)
    assert (out / "runs" / "audio" / "done.json").is_file() and (out / "runs" / "no-audio" / "run.json").is_file()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    done = json.loads((out / "runs" / "audio" / "done.json").read_text())
    n = done["epochs"]
    line = err.strip().splitlines()[-1]
    assert "interrupted: 1 done, 1 left" in line and f"audio finished ({n} epochs)" in line, line
    assert f" of {n} epochs kept" in line and "500" not in line, line
    before = {p: (out / "runs" / "audio" / p).stat().st_mtime_ns for p in ("done.json", "log.csv", "last.pt")}
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert before == {p: (out / "runs" / "audio" / p).stat().st_mtime_ns for p in before}  # not trained again
    rep = json.loads((out / "report.json").read_text())
    assert rep["runs"]["audio"]["epochs"] == rep["runs"]["no-audio"]["epochs"] == n
    assert "fixed He-normal VGGish initialisation" in rep["audio_encoder"]  # no --vggish-weights: named


def test_page_explains_its_numbers_curves_and_overlays(checked, tmp_path):
    """Row: `release-check --budget 60` gave 1 epoch and curves of single dots; overlays squashed 320x240 frames to
    squares in a red that collides with red objects; a clip scored 0.3162 beside a split mIoU of 0.1054 for the
    same single clip, unexplained. Now: a note instead of a curve under 2 epochs, overlays at the frames' aspect
    ratio in colours chosen against the clip, and the page says how a clip's mIoU differs from the split's."""
    import copy

    import numpy as np
    from PIL import Image

    from avsbench_tools.release_check.report import CANDIDATES, write_report

    out = checked[0]
    page = (out / "index.html").read_text()
    assert "A clip&#x27;s mIoU is the mean IoU of its annotated frames" in page
    assert "fixed He-normal" not in page or "Audio encoder:" in page
    rep = json.loads((out / "report.json").read_text())
    name = rep["worst_clips"][0]["name"]
    with Image.open(out / "overlays" / f"{name}.png") as im:
        strip = np.asarray(im.convert("RGB"))
    frames = sorted((Path(rep["release"]) / "s4_data" / "visual_frames").rglob(f"{name}_*.png"))
    with Image.open(frames[0]) as im:
        w, h = im.size
    n = (strip.shape[1] + 4) // (round(160 * w / h) + 4)
    assert strip.shape[0] == 160 and strip.shape[1] == n * round(160 * w / h) + (n - 1) * 4 and n >= 1
    said = page.split("the ground truth&#x27;s outline in ")[1].split(" ")[0]
    px = np.concatenate([np.asarray(Image.open(f).convert("RGB")).reshape(-1, 3) for f in frames]).astype(float)
    far = np.percentile(np.linalg.norm(px - np.asarray(CANDIDATES[said], float), axis=1), 5)
    assert far > 60, (said, far)  # no colour the clip's own pixels have
    one = copy.deepcopy(rep)  # the same report after a single epoch: a note, not a curve of dots
    for r in one["runs"].values():
        r["epochs"] = 1
    (tmp_path / "runs").symlink_to(out / "runs")
    write_report(tmp_path, one, {})
    p1 = (tmp_path / "index.html").read_text()
    assert "1 epoch, too few for a training curve" in p1 and "alt='training curves" not in p1
    if all(r["epochs"] >= 2 for r in rep["runs"].values()):
        assert page.count("alt='training curves") == 2


def test_trivial_predictors_are_named_by_class_name(tmp_path_factory):
    """Row: an AVSS trivial predictor named "class 7"."""
    from avsbench_tools.baselines.dataset import ClipDataset, open_release
    from avsbench_tools.release_check.trivial import trivial_scores

    gold = make_world(tmp_path_factory, clips=4, seconds=5, width=96, height=64, seed=3, gold="avss") / "gold"
    data = open_release(gold, "avss", ("train", "val", "test"))
    split = "test" if data.items("test") else "val"
    t = trivial_scores(ClipDataset(data, "train"), ClipDataset(data, split))
    desc = t["all-frequent-class"]["description"]
    k = int(desc.split("(class ")[1].split(",")[0])
    assert desc.startswith(f"every pixel {data.release.classes[k]} (class {k}") and k > 0, desc


def test_an_interrupted_run_continues_with_what_is_left_of_its_budget(tmp_path):
    """Row (Ctrl-C then the same command): the run that was going is never given a fresh budget. Its kept epochs'
    seconds (log.csv beside last.pt) are taken off it; when they used it all, training is over (no epoch more)."""
    from avsbench_tools.release_check.plan import Plan, ReleaseCheckOptions
    from avsbench_tools.release_check.runs import _train

    run = tmp_path / "runs" / "audio"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"kept")  # never opened: the budget is spent
    (run / "log.csv").write_text("epoch,train_loss,main_loss,avm_loss,val_miou,val_fscore,seconds,best\n"
                                 "1,0.3,0.3,0,0.10,0.2,70.0,True\n2,0.2,0.2,0,0.25,0.3,55.0,True\n")
    plan = Plan("cpu", "resnet18", 64, 32, 2, 1e-3, 10.0, 48, budget=120.0)
    info = _train(tmp_path / "no-release", "s4", run, "audio", ReleaseCheckOptions(), plan, None, lambda *a: None)
    assert info == {"epochs": 2, "best_epoch": 2, "best_val_miou": 0.25,
                    "stopped": "time budget of 120 s (after 2 epochs)"}
    assert json.loads((run / "trained.json").read_text()) == info

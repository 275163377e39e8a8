"""Issue 21, item 5: every printed number says what it is. `baseline predict` prints the scores of the masks it
wrote exactly as `avs-tools evaluate` prints them (same protocol names, same numbers), and its float-logit
figures under their own name; `evaluate --allow-missing` says on the result lines how many frames it scored
as empty masks."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import run_cli
from tests.helpers.worlds import make_world


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """An S4 world's gold release, a small random TPAVI checkpoint (a quarter-width ResNet-18 with 32 channels, run at
    64x64 and upsampled to 224 as the CPU runs are: the printed numbers are compared, whatever the model), and
    `baseline predict` of its test split."""
    import torch

    from avsbench_tools.baselines.model import ModelConfig, build_model
    from avsbench_tools.baselines.weights import save_checkpoint

    gold = make_world(tmp_path_factory, clips=8, seconds=5, width=96, height=64, seed=4, gold="avsbench-s4") / "gold"
    base = tmp_path_factory.mktemp("numbers")
    torch.manual_seed(0)
    save_checkpoint(build_model(ModelConfig(backbone="resnet18-w16", num_classes=1, setting="s4", channels=32)),
                    base / "ck.pt", extra={"input_size": 64})
    out = base / "pred"
    r = run_cli("baseline", "predict", gold, "--checkpoint", base / "ck.pt", "--setting", "s4", "--split", "test",
                "--out", out, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    return gold, out, r.stdout


def _scores(stdout: str) -> list[str]:
    return [x.strip() for x in stdout.splitlines() if x.strip().startswith(("mIoU", "F-score"))]


def test_predict_prints_what_evaluate_of_its_output_prints(predicted):
    """Row: `baseline predict` printed F 0.1093, `evaluate` of its own output 0.1066, neither saying which protocol.
    The cause: predict printed the F of its float logits, evaluate scores the 8-bit PNGs predict writes (the
    probabilities rounded to k/255 cross the 255 F thresholds elsewhere). Now predict prints evaluate's lines for
    its files, and the float figures labelled as such."""
    gold, out, stdout = predicted
    ev = run_cli("evaluate", "--format", "avsbench-s4", "--gt", gold, "--pred", out, "--split", "test", "-q")
    assert ev.returncode == 0, ev.stderr
    mine, theirs = _scores(stdout), _scores(ev.stdout)
    assert len(mine) == 3 and mine == theirs, (stdout, ev.stdout)
    assert any("(official, batch 20 frames)" in x for x in mine)
    floats = [x for x in stdout.splitlines() if "on the float logits" in x]
    assert len(floats) == 1 and "before the 8-bit PNGs (official protocol" in floats[0], stdout


def test_allow_missing_says_on_the_result_line_how_many_frames_were_empty(predicted, tmp_path):
    """Row: `evaluate --allow-missing` printed an mIoU against empty masks with nothing on the same line saying so."""
    gold, out, _ = predicted
    pred = tmp_path / "pred"
    shutil.copytree(out, pred)
    masks = sorted(pred.rglob("*.png"))
    for p in masks[:2]:
        p.unlink()
    r = run_cli("evaluate", "--format", "avsbench-s4", "--gt", gold, "--pred", pred, "--split", "test",
                "--allow-missing", "-q")
    assert r.returncode == 0, r.stderr
    n = len(masks)
    lines = _scores(r.stdout)
    note = f"(2 of {n} frames without a prediction, scored as empty masks)"
    assert lines[0].startswith("mIoU") and lines[0].endswith(note), r.stdout
    assert lines[1].startswith("F-score") and lines[1].endswith(note), r.stdout

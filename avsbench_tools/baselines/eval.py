"""`avs-tools baseline eval RUN --split test`: the official metrics of a trained run on a split.

The run's best checkpoint (or `last`, or a path) predicts the split into RUN/predictions/<split>/ (the
release's mask layout and logits.npz, see predict.py); those PNGs are then scored by
`avsbench_tools.evaluate`, the code behind `avs-tools evaluate`, so `--json` prints exactly what
`avs-tools evaluate --format F --gt RELEASE --pred RUN/predictions/<split> --split <split> --json`
prints. The same numbers computed on the float logits before any PNG quantisation (official protocol:
sigmoid > 0.5, F over the official test batch of 4 videos; AVSS at 224x224 over all padded frames) go
to RUN/eval_<split>.json under "official_float", with the per-clip mIoU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_text
from avsbench_tools.outdir import claim
from avsbench_tools.progress import Progress


@dataclass
class EvalResult:
    scores: dict  # evaluate()'s dict: the keys of `avs-tools evaluate --json`
    official_float: dict | None
    per_clip: list
    checkpoint: Path
    predictions: Path
    warnings: list
    release: Path | None = None


def run_checkpoint(run: Path, which: str | None) -> Path:
    """best (default, falls back to last when no epoch was validated yet), last, or a path."""
    run = Path(run)
    if which in (None, "best"):
        for name in ("best.pt", "last.pt"):
            if (run / name).is_file():
                return run / name
        raise UsageError(f"RUN {run}: no checkpoint yet (best.pt/last.pt); train at least one epoch")
    if which == "last":
        if not (run / "last.pt").is_file():
            raise UsageError(f"RUN {run}: no last.pt yet; train at least one epoch")
        return run / "last.pt"
    path = Path(which)
    if not path.is_file():
        raise UsageError(f"--checkpoint {path}: no such file")
    return path


def evaluate_run(run: Path, split: str = "test", checkpoint: str | None = None, device: str = "auto",
                 vggish_weights: Path | None = None, progress: Progress | None = None) -> EvalResult:
    """Predict `split` with the run's checkpoint and score it (see the module)."""
    from avsbench_tools.baselines.dataset import setting_format
    from avsbench_tools.baselines.predict import PredictOptions, predict
    from avsbench_tools.baselines.runlog import read_run
    from avsbench_tools.evaluate import evaluate

    run = Path(run)
    info = read_run(run)
    release, setting = Path(info["release"]), info["setting"]
    opts = info.get("options", {})
    ck = run_checkpoint(run, checkpoint)
    vggish = vggish_weights or (Path(opts["vggish_weights"]) if opts.get("vggish_weights") else None)
    if vggish is not None and not Path(vggish).is_file():
        raise UsageError(f"RUN {run}: its --vggish-weights {vggish} is gone; pass --vggish-weights PATH")
    pred_dir = run / "predictions" / split
    claim(run, "predictions", f"eval_{split}.json")  # the run folder's record of what avs-tools wrote in it
    pred_dir.parent.mkdir(exist_ok=True)
    pres = predict(release, setting, pred_dir,
                   PredictOptions(checkpoint=ck, split=split, vggish_weights=vggish, device=device,
                                  no_audio=bool(opts.get("no_audio")), replace_stale=True), progress)
    scores = evaluate(setting_format(setting), release, pred_dir, split, progress=progress)
    res = EvalResult(scores, pres.scores, pres.per_clip, ck, pred_dir, pres.warnings, release)
    if pres.scores is not None:
        atomic_write_text(run / f"eval_{split}.json", json.dumps(
            {"checkpoint": str(ck), "evaluate": scores, "official_float": {k: v for k, v in pres.scores.items() if k != "clip_stats"}, "per_clip": pres.per_clip,
             "warnings": pres.warnings}, indent=1, default=float))
    return res


FLOAT_PROTOCOL = {  # what the in-memory figures of predict/eval are computed on, as printed beside them
    "s4": "on the float logits, before the 8-bit PNGs (official protocol: sigmoid > 0.5, F over batches of 4 videos)",
    "ms3": "on the float logits, before the 8-bit PNGs (official protocol: sigmoid > 0.5, F over batches of 4 videos)",
    "avss": "on the float logits at 224x224 over all 10 (padded) frames (official protocol)",
}


def score_saved(release: Path, setting: str, pred_dir: Path, split: str,
                progress: Progress | None = None) -> tuple[dict | None, str | None]:
    """`avs-tools evaluate` of the masks predict wrote to `pred_dir` (the numbers a user gets from evaluating them)
    -> (its dict, None), or (None, why) when the split has nothing to score them against."""
    from avsbench_tools.baselines.dataset import setting_format
    from avsbench_tools.evaluate import evaluate

    try:
        return evaluate(setting_format(setting), release, pred_dir, split, progress=progress), None
    except UsageError as exc:
        return None, str(exc)

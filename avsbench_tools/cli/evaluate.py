"""avs-tools evaluate (and the score lines `baseline eval` / `baseline predict` print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    Format,
    Json,
    Quiet,
    print_json,
)


def metric_lines(res: dict) -> list[str]:
    """The S4/MS3/AVSS score lines of an `evaluate` result, each number named by its protocol; `evaluate`,
    `baseline eval` and `baseline predict` print these same lines for the same files."""
    empty = (f"  ({res['missing']} of {res['frames']} frames without a prediction, scored as empty masks)"
             if res.get("missing") else "")
    bs = f" (official, batch {res['fscore_batch_size']} frames)" if "fscore_batch_size" in res else ""
    out = [f"  mIoU               {res['miou']:.4f}{empty}",
           f"  F-score            {res['fscore']:.4f}{bs}{empty}",
           f"  F-score batch-free {res['fscore_batch_free']:.4f}"]
    if "classes_present" in res:
        out.append(f"  classes present    {res['classes_present']} of {res['classes']} "
                   f"(mIoU over present classes {res['miou_present_classes']:.4f})")
    return out


@app.command(short_help="Official metrics of predictions.  e.g. avs-tools evaluate --format avsbench-s4 --gt rel --pred preds")
def evaluate(
    fmt: Format,
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth release root.")],
    pred: Annotated[Path, typer.Option("--pred", help="Predictions: a folder holding a single-channel PNG at the "
                                       "exact relative path of every ground-truth mask (0/255, 0/1 or 8-bit "
                                       "probabilities; AVSS: class indices), at the ground truth's size (Ref-AVS: "
                                       "or 256x256).")],
    split: Annotated[str | None, typer.Option("--split", help="Split to score (default: the test splits).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Frames per batch of the official F "
                                                   "(default: official).")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Score missing predictions as empty masks "
                                                "(reported) instead of failing.")] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """mIoU (empty-mask rule), F (beta^2 0.3; official batched and batch-free), AVSS 71-class, Ref-AVS J/F/S.

    Predictions are read at the exact path of each ground-truth mask under PRED, never by file name;
    RGB images, wrong sizes and out-of-range values are refused with the first offending path."""
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.evaluate import check_args
    from avsbench_tools.evaluate import evaluate as run

    check_args(fmt, gt, pred)  # path problems: one line, before any progress bar
    with bars(quiet) as progress:
        res = run(fmt, gt, pred, split, batch_size, progress=progress, allow_missing=allow_missing)
        from avsbench_tools.negative_audio import evaluate_negatives
        from avsbench_tools.negative_audio import lines as negative_lines

        neg = evaluate_negatives(fmt, gt, pred, res, allow_missing)  # the release's negative-audio sets, if any
        if neg is not None:
            res["negative_audio"] = neg
    if print_json(res, as_json):
        return
    for w in res["warnings"]:
        typer.echo(f"warning: {w}")
    how = f" ({res['pred_values']})" if "pred_values" in res else ""
    typer.echo(f"{fmt} {'/'.join(res['splits'])}: {res['frames']} frames scored ({res['clips']} clips) "
               f"at {res['resolution']}; predictions {res['predictions']}{how}")
    if res["missing"]:
        typer.echo(f"missing: {res['missing']} of {res['frames']} predictions, scored as empty masks "
                   f"(first: {res['missing_first']})")
    if fmt == "ref-avs":
        if res["resized_predictions"]:
            typer.echo(f"resized: {res['resized_predictions']} predictions at the ground truth's size, "
                       f"to 256x256 by {res['resize_rule']}")
        for s in res["splits"]:
            r = res[s]
            vals = "  ".join(f"{k} {v:.4f}" for k, v in r.items() if k not in ("frames", "missing"))
            empty = f", {r['missing']} of them without a prediction, scored as empty" if r.get("missing") else ""
            typer.echo(f"  {s:7} {vals}  ({r['frames']} frames{empty})")
        if "mix" in res:
            typer.echo(f"  mix     J {res['mix']['J']:.4f}  F {res['mix']['F']:.4f}")
        return
    for line in metric_lines(res):
        typer.echo(line)
    for line in negative_lines(res.get("negative_audio")):
        typer.echo(line)

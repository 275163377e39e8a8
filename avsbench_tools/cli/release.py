"""avs-tools validate / stats / evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    Format,
    FormatOrMarker,
    Json,
    Quiet,
    ReleaseArg,
    json_flag,
    print_json,
    q,
    release_format,
    say_next,
)

ValidateJson = json_flag('{"problems": [{"path", "problem"}], "warnings": [...]}')


@app.command(short_help="Check a release (ours or official).  e.g. avs-tools validate out --format avss")
def validate(
    release: ReleaseArg,
    fmt: FormatOrMarker = None,
    max_print: Annotated[int, typer.Option("--max-print", help="Problems printed (all are counted).")] = 50,
    as_json: ValidateJson = False,
    quiet: Quiet = False,
) -> None:
    """Every file the loaders open exists and decodes; sizes, values, metadata, splits. Exit 1 on problems.

    Warnings (most masks empty, one category or 'unknown', identical expressions, clips with no
    sounding frame, a split with no clips) are printed as `warning: ...` and do not fail the run."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.release import check_release
    from avsbench_tools.validate import validate_release

    fmt = release_format(release, fmt)
    check_release(release, fmt)  # a path problem is one line, before any progress bar
    with bars(quiet or as_json) as progress:
        rep = validate_release(release, fmt, progress=progress)
    if as_json:
        typer.echo(json.dumps({"format": rep.fmt, "root": rep.root, "rows": rep.items, "splits": rep.splits,
                               "files_checked": rep.files_checked,
                               "problems": [{"path": p, "problem": q} for p, q in rep.problems],
                               "warnings": rep.warnings}, indent=1))
        if rep.problems:
            raise typer.Exit(1)
        return
    for path, problem in rep.problems[:max_print]:
        typer.echo(f"{path}: {problem}")
    if len(rep.problems) > max_print:
        typer.echo(f"... and {len(rep.problems) - max_print} more")
    for w in rep.warnings:
        typer.echo(f"warning: {w}")
    splits = ", ".join(f"{k} {v}" for k, v in sorted(rep.splits.items()))
    n_missing = sum(1 for _, p in rep.problems if p == "missing")
    typer.echo(f"validate: {rep.fmt} release {rep.root}: {rep.items} rows ({splits}), {rep.files_checked} files checked, "
               f"{len(rep.problems)} problems ({n_missing} missing files), {len(rep.warnings)} warnings")
    if rep.problems:
        raise typer.Exit(1)
    say_next(f"avs-tools stats {q(release)} --format {fmt} --out report.html", quiet)


@app.command(short_help="The papers' statistics as HTML.  e.g. avs-tools stats out --format ref-avs --out report.html")
def stats(
    release: ReleaseArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML report file (PNG plots are embedded and written to "
                                      "<name>_plots/ beside it). Replaces only a report avs-tools stats wrote.")],
    fmt: FormatOrMarker = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the numbers as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Warnings, the release beside the published figures, videos per category and split, annotated frames,
    objects, sounding objects per frame, mask areas, expressions."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.release import check_release
    from avsbench_tools.stats import check_report_paths, compute_stats, write_report

    fmt = release_format(release, fmt)
    check_release(release, fmt)
    check_report_paths(out)  # before the work: a path problem is one line, at once
    with bars(quiet) as progress:
        st = compute_stats(release, fmt, progress=progress)
    path = write_report(st, out)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in st.items() if not k.startswith("_")}, indent=1))
    for w in st["warnings"]:
        typer.echo(f"warning: {w}")
    missing = f"; media absent for {st['media_missing_rows']} rows (metadata counts only)" if st["media_missing_rows"] else ""
    prov = st.get("provenance")
    review = (f"; object masks: {prov['proposals']} of {prov['masks']} ({100 * prov['share_unreviewed']:.0f}%) "
              f"unreviewed proposals, {prov['reviewed']} human-reviewed ({prov['card']})" if prov else "")
    typer.echo(f"stats: {st['rows']} rows, {st['videos']} videos{missing}{review}, {len(st['warnings'])} warnings "
               f"-> {path}")
    say_next(f"avs-tools evaluate --format {fmt} --gt {q(release)} --pred PREDICTIONS "
             "(a folder with your model's masks at the release's mask paths)", quiet)


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
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.evaluate import check_args
    from avsbench_tools.evaluate import evaluate as run

    check_args(fmt, gt, pred)  # path problems: one line, before any progress bar
    with bars(quiet) as progress:
        res = run(fmt, gt, pred, split, batch_size, progress=progress, allow_missing=allow_missing)
        from avsbench_tools.publish.metrics_negative import evaluate_negatives
        from avsbench_tools.publish.metrics_negative import lines as negative_lines

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

"""avs-tools validate / stats / evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import FMT_HELP


@app.command(short_help="Check a release (ours or official).  e.g. avs-tools validate out --format avss")
def validate(
    release: Path = typer.Argument(..., help="Release root."),
    fmt: str = typer.Option(..., "--format", "-f", help=FMT_HELP),
    max_print: int = typer.Option(50, "--max-print", help="Problems printed (all are counted)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Every file the loaders open exists and decodes; sizes, values, metadata, splits. Exit 1 on problems."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.validate import validate_release

    with bars(quiet) as cb:
        rep = validate_release(release, fmt, progress=cb)
    for path, problem in rep.problems[:max_print]:
        typer.echo(f"{path}: {problem}")
    if len(rep.problems) > max_print:
        typer.echo(f"... and {len(rep.problems) - max_print} more")
    splits = ", ".join(f"{k} {v}" for k, v in sorted(rep.splits.items()))
    n_missing = sum(1 for _, p in rep.problems if p == "missing")
    typer.echo(f"validate: {rep.fmt} release {rep.root}: {rep.items} rows ({splits}), {rep.files_checked} files checked, "
               f"{len(rep.problems)} problems ({n_missing} missing files)")
    if rep.problems:
        raise typer.Exit(1)


@app.command(short_help="The papers' statistics as HTML.  e.g. avs-tools stats out --format ref-avs --out report.html")
def stats(
    release: Path = typer.Argument(..., help="Release root."),
    fmt: str = typer.Option(..., "--format", "-f", help=FMT_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="HTML report path (PNG plots are embedded and written beside it)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the numbers as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Videos per category and split, annotated frames, objects, sounding objects, mask areas, expressions."""
    from avsbench_tools.cli.progress import bars
    from avsbench_tools.stats import compute_stats, write_report

    with bars(quiet) as cb:
        st = compute_stats(release, fmt, progress=cb)
    path = write_report(st, out)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in st.items() if not k.startswith("_")}, indent=1))
    missing = f"; media absent for {st['media_missing_rows']} rows (metadata counts only)" if st["media_missing_rows"] else ""
    typer.echo(f"stats: {st['rows']} rows, {st['videos']} videos{missing} -> {path}")


@app.command(short_help="Official metrics of predictions.  e.g. avs-tools evaluate --format avsbench-s4 --gt rel --pred preds")
def evaluate(
    fmt: str = typer.Option(..., "--format", "-f", help=FMT_HELP),
    gt: Path = typer.Option(..., "--gt", help="Ground-truth release root."),
    pred: Path = typer.Option(..., "--pred", help="Predictions in the release's own mask layout (PNG)."),
    split: str = typer.Option(None, "--split", help="Split to score (default: the test splits)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Frames per batch of the official F (default: official)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """mIoU (empty-mask rule), F (beta^2 0.3; official batched and batch-free), AVSS 71-class, Ref-AVS J/F/S."""
    from avsbench_tools.evaluate import evaluate as run

    res = run(fmt, gt, pred, split, batch_size)
    if as_json:
        typer.echo(json.dumps(res, indent=1))
        return
    if fmt == "ref-avs":
        for s in res["splits"]:
            r = res[s]
            vals = "  ".join(f"{k} {v:.4f}" for k, v in r.items() if k != "frames")
            typer.echo(f"{s:7} {vals}  ({r['frames']} frames)")
        if "mix" in res:
            typer.echo(f"mix     J {res['mix']['J']:.4f}  F {res['mix']['F']:.4f}")
        return
    typer.echo(f"{fmt} {'/'.join(res['splits'])}: {res['frames']} frames")
    typer.echo(f"  mIoU               {res['miou']:.4f}")
    bs = f" (official, batch {res['fscore_batch_size']} frames)" if "fscore_batch_size" in res else ""
    typer.echo(f"  F-score            {res['fscore']:.4f}{bs}")
    typer.echo(f"  F-score batch-free {res['fscore_batch_free']:.4f}")
    if "classes_present" in res:
        typer.echo(f"  classes present    {res['classes_present']} of {res['classes']} "
                   f"(mIoU over present classes {res['miou_present_classes']:.4f})")

"""avs-tools validate."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    FormatOrMarker,
    Quiet,
    ReleaseArg,
    json_flag,
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
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.release_reader import check_release
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

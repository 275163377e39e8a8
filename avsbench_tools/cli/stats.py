"""avs-tools stats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import (
    FormatOrMarker,
    Quiet,
    ReleaseArg,
    q,
    release_format,
    say_next,
)


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
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.release_reader import check_release
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

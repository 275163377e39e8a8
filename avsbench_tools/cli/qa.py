"""avs-tools qa: what the review in Label Studio changed (from the catalog alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbench_tools.cli import app
from avsbench_tools.cli.common import Quiet, WorkspaceArg, json_flag, print_json, q, say_next, stage_run

QaJson = json_flag("the report as JSON ({frames, by_backend, time, agreement, most_changed, ...})")


@app.command(short_help="What the review changed: IoU, time, agreement.  e.g. avs-tools qa ws --html qa.html")
def qa(
    workspace: WorkspaceArg,
    as_json: QaJson = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report with "
                                              "overlays of the frames changed most.")] = None,
    quiet: Quiet = False,
) -> None:
    """Reviewed and pending frames; per backend and category the mean IoU between the proposal and the
    final mask and the share accepted unchanged; time per frame; annotator agreement; frames changed most."""
    from avsbench_tools.studio.qa import qa as run

    with stage_run(workspace, quiet=True) as (ws, _):
        if html is not None:
            from avsbench_tools.studio.qa_html import check_html, write_html

            check_html(html)
        rep = run(ws)
        if html is not None:
            write_html(ws, rep, html)
    if print_json(rep.to_json(), as_json):
        return
    _print_report(rep)
    if html is not None:
        typer.echo(f"qa: HTML report -> {html}")
    if not rep.frames["pushed"]:
        say_next(f"avs-tools push {q(workspace)}  (nothing was pushed to Label Studio yet)", quiet)
    elif not rep.frames["reviewed"]:
        say_next(f"avs-tools pull {q(workspace)}  (once annotators have submitted frames)", quiet)
    else:
        say_next(f"avs-tools export {q(workspace)} OUT", quiet)


def _num(v, fmt: str = "") -> str:
    """A figure for the text report: '-' where there is none (never 'None')."""
    return "-" if v is None else format(v, fmt)


def _print_report(rep) -> None:
    from avsbench_tools.studio.qa_html import change_text

    f = rep.frames
    typer.echo(f"frames: {f['reviewed']} reviewed, {f['pending']} pending of {f['pushed']} pushed "
               f"({f['sampled']} sampled); {f['silent']} without a sounding object, {f['unusable']} unusable, "
               f"{f['skipped_only']} only skipped; {f['annotations']} submitted and {f['cancelled']} cancelled "
               "annotations")
    if "clips_reviewed" in f:
        typer.echo(f"clips: {f['clips_reviewed']} fully reviewed (every frame their exported form supervises), "
                   f"{f['clips_partial']} partly")
    if f.get("label_problems"):
        typer.echo(f"labels: {f['label_problems']} regions carry a label the clip contradicts, an old category or "
                   "one outside the recipe (avs-tools pull listed them; the object keeps the clip's category)")
    if rep.silent_masks:
        shown = ", ".join(f"{m['clip_id']} second {m['second']} {m['category']} ({m['pixels']} px)"
                          for m in rep.silent_masks[:5])
        typer.echo(f"silent seconds: {len(rep.silent_masks)} reviewed masks lie in seconds the audio analysis found "
                   f"silent (look at them again): {shown}{', ...' if len(rep.silent_masks) > 5 else ''}")
    typer.echo(f"masks binarised at alpha >= {rep.alpha_threshold}; several annotators on a frame: the review set "
               f"takes {rep.rule}")
    if rep.by_backend:
        typer.echo("what the review did to each proposed object (kept: mask unchanged; deleted: in a silent second "
                   "(marked, or no sound in the audio) / otherwise; mean IoU over kept and edited objects only):")
        cols = ("proposed", "unchanged", "kept", "edited", "relabelled", "deleted_silent", "deleted", "added")
        heads = ("proposed", "unchanged", "kept", "edited", "relabel", "del.silent", "deleted", "added")
        typer.echo(f"  {'backend':<14} {'category':<16} " + " ".join(f"{h:>10}" for h in heads) + f" {'mean IoU':>9}")
        for r in rep.by_backend:
            typer.echo(f"  {r['backend']:<14} {r['category']:<16} " + " ".join(f"{r[c]:>10}" for c in cols)
                       + f" {_num(r['mean_iou'], '.3f'):>9}")
    elif f["reviewed"]:
        typer.echo(f"proposal vs final: no reviewed frame with a known proposal ({f['without_known_proposal']} "
                   "started without one)")
    for r in rep.relabels:
        typer.echo(f"relabelled: {r['from']} -> {r['to']} {r['objects']}")
    if rep.origins:
        typer.echo("region origins: " + ", ".join(f"{k} {v}" for k, v in rep.origins.items()))
    t = rep.time
    if t["annotations_timed"]:
        typer.echo(f"time: {_num(t['per_reviewed_frame_s'])} s per reviewed frame (mean {_num(t['mean_s'])} s, "
                   f"median {_num(t['median_s'])} s per annotation, {_num(t['total_s'])} s in all)")
    a = rep.agreement
    if a["frames"]:
        typer.echo(f"agreement (different annotators; frames annotated by two or more: {a['frames']}): mean IoU "
                   f"{_num(a['mean_iou'], '.3f')} over {a['pairs']} pairs")
        for c in a.get("by_category", []):
            typer.echo(f"  {c['category']:<16} mean IoU {_num(c['mean_iou'], '.3f')} (lowest {_num(c['min_iou'], '.3f')})"
                       f" over {c['pairs']} pairs")
        for flag, n in a.get("flags", {}).items():
            if n["pairs"]:
                typer.echo(f"  flag {flag!r}: set alike in {n['both'] + n['neither']} of {n['pairs']} pairs "
                           f"({n['both']} both, {n['disagree']} only one)")
    if rep.most_changed:
        typer.echo("changed most:")
    for c in rep.most_changed[:5]:
        typer.echo(f"  {c.clip_id} second {c.second}: {change_text(c)}")

"""The dataset card written beside every release: warnings, counts, provenance, licences."""

from __future__ import annotations

from pathlib import Path

from avsbench_tools import formats
from avsbench_tools.completeness import form_unknown_warning, unverified_warning
from avsbench_tools.export.output import MANIFEST
from avsbench_tools.workspace import Workspace


def public_source(s) -> tuple[str, str]:
    """(source, title) as the card shows them: a local file by its name only, never its path or file:// URL."""
    if s.kind == "local" or (s.url or "").startswith("file:"):
        from urllib.parse import unquote, urlparse

        name = Path(s.path).name if s.path else Path(unquote(urlparse(s.url or "").path)).name
        return name, Path(s.title).name if s.title else ""
    return s.url or (Path(s.path).name if s.path else ""), s.title or ""


def release_warnings(res) -> dict[str, str]:
    """What the release lacks, in words for its readers (the card) and its maker (stderr)."""
    out = {}
    if res.template_expressions:
        out["template"] = (f"{res.template_expressions} of {res.objects} objects have no expression written by an "
                           "annotator: they are exported with the template expression 'the <category>'")
    if res.uncategorised:
        n = len(res.uncategorised)
        f = formats.get(res.fmt)
        if f.binary:
            out["category"] = f"{n} clip{'s' if n != 1 else ''} without a category: exported under the category 'unknown'"
        elif f.semantic:
            out["category"] = (f"{n} clip{'s' if n != 1 else ''} with sounding objects of no known category: those "
                               "objects are exported as background")
        else:
            out["category"] = (f"{n} clip{'s' if n != 1 else ''} with objects of no category: exported as 'object' "
                               "(expression 'the object')")
    if res.form_unknown:
        n = len(res.form_unknown)
        out["form"] = form_unknown_warning(n)
    if res.unverified_classes:
        out["unverified"] = unverified_warning(len(res.unverified_classes), res.clips)
    return out


def provenance_counts(res) -> dict:
    """What the release's marker records of its unverified classes, for validate and stats."""
    return {"form_unknown": list(res.form_unknown), "unverified_classes": list(res.unverified_classes)}


def review_lines(res) -> list[str]:
    """The card's lines on clips a Label Studio review left out or that proposals completed."""
    out = []
    if res.filled_seconds:
        out.append(f"- frames of partly reviewed clips filled with unreviewed proposals (--include-unreviewed): "
                   f"{res.filled_seconds}")
    if res.skipped_partial:
        out.append(f"- clips left out because only some of their frames are reviewed: {len(res.skipped_partial)} "
                   f"({', '.join(res.skipped_partial)})")
    if res.skipped_unusable:
        n = "/".join(str(s) for s in formats.get(res.fmt).clip_seconds)
        where = ", ".join(f"{c} (second {', '.join(map(str, s))})" for c, s in res.skipped_unusable.items())
        out.append(f"- clips left out because a reviewer marked a frame 'unusable frame': {len(res.skipped_unusable)} "
                   f"({where}). Rule: a {res.fmt} clip holds exactly {n} frames, one per second, so a clip is "
                   "released whole or not at all; a clip with an unusable frame is left out rather than released "
                   "with that frame missing or replaced.")
    return out


def card(ws: Workspace, res, include_unreviewed: bool, clips, sources) -> str:
    """DATASET_CARD.md of a release: `res` is its ExportResult, `clips` the exported clips."""
    lines = [f"# {ws.recipe.name}: {res.fmt} release", ""]
    if res.warnings:
        lines += ["## Warnings", ""] + [f"> **Warning: {w}.**" for w in res.warnings.values()] + [""]
    lines += [f"Made by avs-tools from workspace `{ws.root.name}` (recipe `{ws.recipe.name}`, digest {ws.recipe.digest}).",
              "", "## Counts", "", "| split | clips |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sorted(res.splits.items())]
    lines += ["", "## Annotation provenance", "",
              f"- object masks from human review: {res.from_reviews}",
              f"- object masks from unreviewed pre-annotation: {res.from_proposals}"]
    if include_unreviewed:
        lines.append("- **Exported with --include-unreviewed: masks without a human review are machine proposals.**")
    if res.skipped_unannotated:
        lines.append(f"- clips left out for lack of reviewed masks: {res.skipped_unannotated}")
    lines += review_lines(res)
    if res.template_expressions:
        lines.append(f"- objects with a template expression ('the <category>'): {res.template_expressions} "
                     f"of {res.objects}")
    if res.uncategorised:
        lines.append(f"- clips without a known category: {len(res.uncategorised)}")
    if res.form_unknown:
        lines.append(f"- clips left out because unverified classes leave their single/multi-source form (v1s or v1m) "
                     f"open: {len(res.form_unknown)} ({', '.join(res.form_unknown)}). Rule: a clip's form is decided "
                     "by the subset its source states, its length, or classes a reviewer or a class-naming model gave; "
                     "never by a backend that labels every object with the clip's category")
    if res.unverified_classes:
        lines.append(f"- clips with unreviewed proposals of unverified classes: {len(res.unverified_classes)}")
    backends = ws.catalog.backend_counts()
    lines += [f"- mask versions by backend: {', '.join(f'{b}: {n}' for b, n in backends.items()) or 'none'}"]
    lines += ["", "## Licences and attribution", "",
              "Annotations: CC BY-NC 4.0 unless the publisher states otherwise. Each clip keeps its source video's licence:",
              "", "| clip | source | title | uploader | licence |", "|---|---|---|---|---|"]
    for c in clips:
        s = sources.get(c.source_id)
        where, title = public_source(s) if s else ("", "")
        cells = [c.clip_id, where, title, (s.uploader or "") if s else "", (s.license or "unknown") if s else "unknown"]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    lines += ["", f"Checksums of every file: `{MANIFEST}` (sha256sum -c {MANIFEST})."]
    return "\n".join(lines) + "\n"

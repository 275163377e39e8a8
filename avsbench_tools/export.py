"""export: a workspace as a release in an official layout, plus a dataset card and checksums beside it.

OUT is the release root the way the official downloads unpack (`OUT/Single-source/...` for S4,
`OUT/Multi-sources/...` for MS3, `OUT/metadata.csv` etc. for AVSS and Ref-AVS). Masks come from
human-reviewed versions only, unless --include-unreviewed (then the latest proposal stands in where
no review exists, and the card says how many). Everything is written into a temporary folder that
is renamed to OUT at the end; an existing OUT is refused without --force.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.audio.wav import read_wav
from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_dir
from avsbench_tools.masks import latest_masks, load_mask
from avsbench_tools.workspace import Workspace
from avsbench_tools.writers import RefObject, ReleaseClip, open_writer

Progress = Callable[[str, int, int, str], None]
CARD = "DATASET_CARD.md"
MANIFEST = "SHA256SUMS"


@dataclass
class ExportResult:
    out: str
    fmt: str
    clips: int = 0
    skipped_unannotated: int = 0
    from_proposals: int = 0  # masks taken from unreviewed proposals
    from_reviews: int = 0
    template_expressions: int = 0  # Ref-AVS objects without a studio expression: "the <category>"
    splits: dict[str, int] = field(default_factory=dict)
    files: int = 0


def _image(ws: Workspace, rel: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(ws.path(rel)).convert("RGB"))


def _video_key(src) -> str:
    return (src.video_id if src is not None and src.video_id else None) or (src.source_id if src else "unknown")


def build_clip(ws: Workspace, clip, src, fmt: str, include_unreviewed: bool, names: dict[str, str],
               res: ExportResult) -> ReleaseClip | None:
    """The ReleaseClip of one workspace clip, or None when it has no usable masks."""
    from avsbench_tools.writers.avss import avss_label, avss_uid, class_list

    frames_rows = ws.catalog.query("SELECT * FROM frames WHERE clip_id=? ORDER BY second", (clip.clip_id,))
    audio = ws.catalog.query("SELECT * FROM audio WHERE clip_id=?", (clip.clip_id,))
    if not frames_rows or not audio:
        return None
    kinds = ("review", "proposal") if include_unreviewed else ("review",)
    rows = latest_masks(ws, clip.clip_id, kinds)
    reviewed = any(r["kind"] == "review" for r in rows)
    proposed = ws.catalog.stage_of(clip.clip_id, "preannotate")
    if not reviewed and not (include_unreviewed and proposed is not None and proposed["status"] == "done"):
        res.skipped_unannotated += 1
        return None
    for r in rows:
        if r["kind"] == "review":
            res.from_reviews += 1
        else:
            res.from_proposals += 1
    seconds = len(frames_rows)
    h, w = frames_rows[0]["height"], frames_rows[0]["width"]
    frames = [_image(ws, r["path"]) for r in frames_rows]
    pcm, _ = read_wav(ws.path(audio[0]["wav_path"]))
    logmel = np.load(ws.path(audio[0]["logmel_path"]))
    by_sec: dict[int, list[tuple[dict, np.ndarray]]] = {}
    for r in rows:
        by_sec.setdefault(r["second"], []).append((r, load_mask(ws, r["path"])))
    vkey = _video_key(src)
    rc = ReleaseClip(name=names[clip.clip_id], video_id=vkey, start=float(clip.start), seconds=seconds,
                     split=clip.split, frames=frames, pcm=pcm, logmel=logmel)
    sounding = [(s, r, m) for s, lst in by_sec.items() for r, m in lst if r["sounding"] != 0]
    if fmt in ("avsbench-s4", "avsbench-ms3"):
        rc.masks = {s: np.zeros((h, w), bool) for s in range(seconds)}
        for s, _, m in sounding:
            rc.masks[s] |= m
        cats = [r["category"] for _, r, _ in sounding if r["category"]]
        rc.category = clip.category or (max(set(cats), key=cats.count) if cats else "unknown")
    elif fmt == "avss":
        classes = {c: i for i, c in enumerate(class_list(ws.recipe))}
        rc.masks = {s: np.zeros((h, w), np.uint8) for s in range(seconds)}
        for s, r, m in sounding:
            cat = r["category"] or clip.category
            if cat in classes:
                rc.masks[s][m] = classes[cat]
        rc.sounding = [r["category"] or clip.category for _, r, _ in sounding if (r["category"] or clip.category)]
        rc.avss_label = avss_label(seconds, len(set(rc.sounding)))
        if rc.avss_label == "v1m":
            rc.video_id = names[clip.clip_id]
        rc.name = avss_uid(rc.avss_label, rc.video_id, float(clip.start), seconds)
    else:
        exprs = ws.catalog.query("SELECT * FROM expressions WHERE clip_id=? ORDER BY n", (clip.clip_id,))
        fids = sorted({r["fid"] for lst in by_sec.values() for r, _ in lst})
        for fid in fids:
            masks = np.zeros((seconds, h, w), bool)
            cat = None
            for s, lst in by_sec.items():
                for r, m in lst:
                    if r["fid"] == fid:
                        masks[s] = m
                        cat = cat or r["category"]
            cat = cat or clip.category or "object"
            texts = [e["text"] for e in exprs if e["fid"] == fid and not e["is_null"]]
            if not texts:
                texts = [f"the {cat.replace('_', ' ')}"]  # template; the card counts them
                res.template_expressions += 1
            rc.objects.append(RefObject(fid=fid, category=cat, masks=masks, expressions=texts))
        rc.null_expressions = [e["text"] for e in exprs if e["is_null"]]
    return rc


def _names(clips, sources, fmt: str) -> dict[str, str]:
    """Release names: the source video id where it has one clip here (S4/AVSS style), else the clip id."""
    per_video: dict[str, int] = {}
    for c in clips:
        k = _video_key(sources.get(c.source_id))
        per_video[k] = per_video.get(k, 0) + 1
    out = {}
    for c in clips:
        k = _video_key(sources.get(c.source_id))
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in k)
        if fmt in ("avsbench-ms3", "ref-avs"):
            out[c.clip_id] = c.clip_id  # <ytid>_<n> and <ytid>_<start_ms>_<end_ms> already
        else:
            out[c.clip_id] = safe if per_video[k] == 1 else c.clip_id
    return out


def _card(ws: Workspace, res: ExportResult, include_unreviewed: bool, clips, sources) -> str:
    lines = [f"# {ws.recipe.name}: {res.fmt} release", "",
             f"Made by avs-tools from workspace `{ws.root.name}` (recipe `{ws.recipe.name}`, digest {ws.recipe.digest}).",
             "", "## Counts", "", "| split | clips |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sorted(res.splits.items())]
    lines += ["", "## Annotation provenance", "",
              f"- object masks from human review: {res.from_reviews}",
              f"- object masks from unreviewed pre-annotation: {res.from_proposals}"]
    if include_unreviewed:
        lines.append("- **Exported with --include-unreviewed: masks without a human review are machine proposals.**")
    if res.skipped_unannotated:
        lines.append(f"- clips left out for lack of reviewed masks: {res.skipped_unannotated}")
    if res.template_expressions:
        lines.append(f"- objects with a template expression ('the <category>'): {res.template_expressions}")
    backends = ws.catalog.query("SELECT backend, COUNT(*) FROM mask_versions GROUP BY backend")
    lines += [f"- mask versions by backend: {', '.join(f'{b[0]}: {b[1]}' for b in backends) or 'none'}"]
    lines += ["", "## Licences and attribution", "",
              "Annotations: CC BY-NC 4.0 unless the publisher states otherwise. Each clip keeps its source video's licence:",
              "", "| clip | source | title | uploader | licence |", "|---|---|---|---|---|"]
    for c in clips:
        s = sources.get(c.source_id)
        cells = [c.clip_id, (s.url or s.path or "") if s else "", (s.title or "") if s else "",
                 (s.uploader or "") if s else "", (s.license or "unknown") if s else "unknown"]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    lines += ["", f"Checksums of every file: `{MANIFEST}` (sha256sum -c {MANIFEST})."]
    return "\n".join(lines) + "\n"


def _manifest(root: Path) -> str:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out.append(f"{h.hexdigest()}  {rel}")
    return "\n".join(out) + "\n"


def export(ws: Workspace, out: Path, fmt: str | None = None, split: str | None = None,
           include_unreviewed: bool = False, force: bool = False, seed: int = 0, unseen: list[str] | None = None,
           progress: Progress | None = None) -> ExportResult:
    from avsbench_tools.splits import assign_splits

    progress = progress or (lambda *a: None)
    fmt = fmt or ws.recipe.format
    if fmt != ws.recipe.format and {fmt, ws.recipe.format} - {"avsbench-s4", "avsbench-ms3"}:
        raise UsageError(f"--format {fmt}: workspace {ws.root} was built for {ws.recipe.format}")
    out = Path(out)
    if out.exists() and not force:
        raise UsageError(f"{out} exists (pass --force to replace it)")
    assign_splits(ws, seed=seed, unseen=unseen)
    sampled = {r[0] for r in ws.catalog.query("SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done'")}
    clips = [c for c in ws.catalog.clips() if c.clip_id in sampled]
    if split:
        known = sorted({c.split for c in clips})
        want = {"test_s", "test_u"} if (fmt == "ref-avs" and split == "test") else {split}
        clips = [c for c in clips if c.split in want]
        if not clips:
            raise UsageError(f"--split {split}: no sampled clips in it (splits here: {', '.join(known) or 'none'})")
    if not clips:
        raise UsageError(f"{ws.root}: no sampled clips to export (run avs-tools sample)")
    sources = {s.source_id: s for s in ws.catalog.sources()}
    names = _names(clips, sources, fmt)
    res = ExportResult(str(out), fmt)
    exported = []
    with atomic_dir(out) as tmp:
        w = open_writer(fmt, tmp, ws.recipe)
        for i, c in enumerate(clips):
            rc = build_clip(ws, c, sources.get(c.source_id), fmt, include_unreviewed, names, res)
            if rc is not None:
                w.add(rc)
                res.clips += 1
                res.splits[c.split] = res.splits.get(c.split, 0) + 1
                exported.append(c)
            progress("exporting", i + 1, len(clips), c.clip_id)
        if res.clips == 0:
            raise UsageError(f"nothing to export from {ws.root}: no clip has reviewed masks "
                             "(review them in the studio, or pass --include-unreviewed)")
        w.close()
        (tmp / CARD).write_text(_card(ws, res, include_unreviewed, exported, sources), encoding="utf-8")
        (tmp / MANIFEST).write_text(_manifest(tmp), encoding="utf-8")
        res.files = sum(len(f) for _, _, f in os.walk(tmp))
    with ws.catalog.tx() as db:
        for c in exported:
            db.execute("INSERT INTO stage_status(clip_id, stage, status, attempts, settings, updated_at) "
                       "VALUES(?, 'export', 'done', 1, ?, datetime('now')) ON CONFLICT(clip_id, stage) DO UPDATE SET "
                       "status='done', attempts=stage_status.attempts+1, settings=excluded.settings, "
                       "updated_at=excluded.updated_at", (c.clip_id, json.dumps({"fmt": fmt, "out": str(out)})))
    return res

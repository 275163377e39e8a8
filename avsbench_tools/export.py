"""export: a workspace as a release in an official layout, plus a dataset card and checksums beside it.

OUT is the release root the way the official downloads unpack (`OUT/Single-source/...` for S4,
`OUT/Multi-sources/...` for MS3, `OUT/metadata.csv` etc. for AVSS and Ref-AVS). Masks come from
human-reviewed versions only, unless --include-unreviewed (then the latest proposal stands in where
no review exists, and the card says how many).

OUT is checked before any work (`fsutil.check_output_dir`): it must be a new folder, an empty one,
or, with --force, a release avs-tools wrote before (its `.avs-tools-output` marker, listed in
SHA256SUMS like every other file); never the workspace, a folder holding it, a collected source or
anything else. Everything is written into a temporary folder beside OUT that replaces OUT only
when complete; Ctrl-C removes the temporary folder and leaves OUT as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.audio.wav import read_wav
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import MARKER, atomic_dir, check_output_dir, read_marker, write_marker
from avsbench_tools.masks import latest_masks, load_mask
from avsbench_tools.workspace import Workspace
from avsbench_tools.writers import RefObject, ReleaseClip, open_writer

Progress = Callable[[str, int, int, str], None]
CARD = "DATASET_CARD.md"
MANIFEST = "SHA256SUMS"
KIND = "release"  # the kind in the marker of a folder export wrote


@dataclass
class ExportResult:
    out: str
    fmt: str
    clips: int = 0
    skipped_unannotated: int = 0
    from_proposals: int = 0  # masks taken from unreviewed proposals
    from_reviews: int = 0
    template_expressions: int = 0  # Ref-AVS objects without a studio expression: "the <category>"
    objects: int = 0  # Ref-AVS objects exported
    uncategorised: list[str] = field(default_factory=list)  # clips exported without a known category
    splits: dict[str, int] = field(default_factory=dict)
    files: int = 0
    seed: int = 0  # the seed new splits were drawn with
    notes: list[str] = field(default_factory=list)  # options that could not take effect
    warnings: dict[str, str] = field(default_factory=dict)  # what the release lacks: "template"/"category" -> words


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
        rc.category = clip.category or (max(sorted(set(cats)), key=cats.count) if cats else None)
        if rc.category is None:
            rc.category = "unknown"
            res.uncategorised.append(clip.clip_id)
    elif fmt == "avss":
        classes = {c: i for i, c in enumerate(class_list(ws.recipe))}
        rc.masks = {s: np.zeros((h, w), np.uint8) for s in range(seconds)}
        lost = False
        for s, r, m in sounding:
            cat = r["category"] or clip.category
            if cat in classes:
                rc.masks[s][m] = classes[cat]
            else:
                lost = True  # no category (or one the recipe lacks): the object stays background
        if lost or not (clip.category or any(r["category"] for _, r, _ in sounding)):
            res.uncategorised.append(clip.clip_id)
        rc.sounding = [r["category"] or clip.category for _, r, _ in sounding if (r["category"] or clip.category)]
        rc.avss_label = avss_label(seconds, len(set(rc.sounding)))
        if rc.avss_label == "v1m":
            rc.video_id = names[clip.clip_id]
        rc.name = avss_uid(rc.avss_label, rc.video_id, float(clip.start), seconds)
    else:
        exprs = ws.catalog.query("SELECT * FROM expressions WHERE clip_id=? ORDER BY n", (clip.clip_id,))
        fids = sorted({r["fid"] for lst in by_sec.values() for r, _ in lst})
        lost = False
        for fid in fids:
            masks = np.zeros((seconds, h, w), bool)
            cat = None
            for s, lst in by_sec.items():
                for r, m in lst:
                    if r["fid"] == fid:
                        masks[s] = m
                        cat = cat or r["category"]
            cat = cat or clip.category
            if not cat:
                cat, lost = "object", True
            texts = [e["text"] for e in exprs if e["fid"] == fid and not e["is_null"]]
            if not texts:
                texts = [f"the {cat.replace('_', ' ')}"]  # template: export warns, the card says so
                res.template_expressions += 1
            res.objects += 1
            rc.objects.append(RefObject(fid=fid, category=cat, masks=masks, expressions=texts))
        if lost:
            res.uncategorised.append(clip.clip_id)
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


def _public_source(s) -> tuple[str, str]:
    """(source, title) as the card shows them: a local file by its name only, never its path or file:// URL."""
    if s.kind == "local" or (s.url or "").startswith("file:"):
        from urllib.parse import unquote, urlparse

        name = Path(s.path).name if s.path else Path(unquote(urlparse(s.url or "").path)).name
        return name, Path(s.title).name if s.title else ""
    return s.url or (Path(s.path).name if s.path else ""), s.title or ""


def _release_warnings(res: ExportResult) -> dict[str, str]:
    """What the release lacks, in words for its readers (the card) and its maker (stderr)."""
    out = {}
    if res.template_expressions:
        out["template"] = (f"{res.template_expressions} of {res.objects} objects have no expression written by an "
                                   "annotator: they are exported with the template expression 'the <category>'")
    if res.uncategorised:
        n = len(res.uncategorised)
        if res.fmt in ("avsbench-s4", "avsbench-ms3"):
            out["category"] = f"{n} clip{'s' if n != 1 else ''} without a category: exported under the category 'unknown'"
        elif res.fmt == "avss":
            out["category"] = (f"{n} clip{'s' if n != 1 else ''} with sounding objects of no known category: those "
                               "objects are exported as background")
        else:
            out["category"] = (f"{n} clip{'s' if n != 1 else ''} with objects of no category: exported as 'object' "
                               "(expression 'the object')")
    return out


def _card(ws: Workspace, res: ExportResult, include_unreviewed: bool, clips, sources) -> str:
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
    if res.template_expressions:
        lines.append(f"- objects with a template expression ('the <category>'): {res.template_expressions} "
                     f"of {res.objects}")
    if res.uncategorised:
        lines.append(f"- clips without a known category: {len(res.uncategorised)}")
    backends = ws.catalog.query("SELECT backend, COUNT(*) FROM mask_versions GROUP BY backend")
    lines += [f"- mask versions by backend: {', '.join(f'{b[0]}: {b[1]}' for b in backends) or 'none'}"]
    lines += ["", "## Licences and attribution", "",
              "Annotations: CC BY-NC 4.0 unless the publisher states otherwise. Each clip keeps its source video's licence:",
              "", "| clip | source | title | uploader | licence |", "|---|---|---|---|---|"]
    for c in clips:
        s = sources.get(c.source_id)
        where, title = _public_source(s) if s else ("", "")
        cells = [c.clip_id, where, title, (s.uploader or "") if s else "", (s.license or "unknown") if s else "unknown"]
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


def protected_paths(ws: Workspace) -> list[Path]:
    """What an export must never replace: the workspace, its sources/ and every collected source
    (a local file, and the --local folder it came from)."""
    out = [ws.root, ws.path("sources")]
    for s in ws.catalog.sources():
        if not s.path:
            continue
        p = Path(s.path)
        p = p if p.is_absolute() else ws.root / p
        out.append(p)
        if s.kind == "local" and s.title and not Path(s.title).is_absolute():
            rel = Path(s.title).parts
            if rel and p.parts[-len(rel):] == rel and len(p.parts) > len(rel):
                out.append(Path(*p.parts[: -len(rel)]))
    return out


def _listed(folder: Path) -> set[str] | None:
    try:
        text = (Path(folder) / MANIFEST).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    return {line.split("  ", 1)[1] for line in text.splitlines() if "  " in line}


def foreign_file(folder: Path) -> str | None:
    """The first file in an earlier release that its SHA256SUMS does not list (someone put it there),
    or SHA256SUMS itself when it is missing; None when every file is one export wrote."""
    folder = Path(folder)
    listed = _listed(folder)
    if listed is None:
        return MANIFEST
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            rel = (Path(dirpath) / f).relative_to(folder).as_posix()
            if rel not in (MANIFEST, MARKER) and rel not in listed:  # a legacy release gets its marker late
                return rel
    return None


def is_legacy_release(folder: Path) -> bool:
    """A release exported before releases carried the marker: its card says avs-tools made it and its
    SHA256SUMS lists every file it holds."""
    try:
        card = (Path(folder) / CARD).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "Made by avs-tools from workspace" in card and foreign_file(folder) is None


class _Guard:
    def __init__(self):
        self.pending = False  # a Ctrl-C / SIGTERM arrived
        self.deferring = False  # the release is complete and being put in place: finish that first


@contextlib.contextmanager
def _interrupts() -> Iterator[_Guard]:
    """Ctrl-C (or SIGTERM) raises KeyboardInterrupt once; a second one cannot interrupt the clean-up,
    and one that arrives while the finished release is put in place waits for it."""
    g = _Guard()
    if threading.current_thread() is not threading.main_thread():
        yield g
        return

    def handler(signum, frame):
        if g.pending or g.deferring:
            g.pending = True
            return
        g.pending = True
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield g
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


SPLITS = {"avsbench-s4": ("train", "val", "test"), "avsbench-ms3": ("train", "val", "test"),
          "avss": ("train", "val", "test"), "ref-avs": ("train", "val", "test", "test_s", "test_u")}


def export(ws: Workspace, out: Path, fmt: str | None = None, split: str | None = None,
           include_unreviewed: bool = False, force: bool = False, seed: int | None = None,
           unseen: list[str] | None = None, progress: Progress | None = None) -> ExportResult:
    """Write the release; `seed` None means the workspace's split seed (0 for a first export)."""
    from avsbench_tools.splits import assign_splits, split_state

    progress = progress or (lambda *a: None)
    fmt = fmt or ws.recipe.format
    if fmt not in SPLITS:
        raise UsageError(f"--format {fmt}: not a release format (one of {', '.join(SPLITS)})")
    if fmt != ws.recipe.format and {fmt, ws.recipe.format} - {"avsbench-s4", "avsbench-ms3"}:
        raise UsageError(f"--format {fmt}: workspace {ws.root} was built for {ws.recipe.format}")
    if split and split not in SPLITS[fmt]:
        raise UsageError(f"--split {split}: not a {fmt} split (one of {', '.join(SPLITS[fmt])})")
    given = Path(out)
    if force and given.is_dir() and not given.is_symlink() and read_marker(given) is None and is_legacy_release(given):
        write_marker(given, KIND, legacy=True)  # our own earlier release, from before the marker
    out = check_output_dir(given, kind=KIND, force=force, protected=protected_paths(ws))
    if out.is_dir() and any(out.iterdir()):  # our earlier release, and --force: is everything in it ours?
        extra = foreign_file(out)
        if extra == MANIFEST:
            raise UsageError(f"OUT {given}: has no {MANIFEST}, so avs-tools cannot tell that every file in it is "
                             "its own; name a new folder")
        if extra is not None:
            raise UsageError(f"OUT {given}: holds {extra}, which is not part of the release avs-tools wrote (not in "
                             f"its {MANIFEST}); move it out of {given} or name a new folder")
    root = ws.root
    all_clips = ws.catalog.clips()
    if not all_clips:
        raise UsageError(f"nothing to export: workspace {root} has no clips yet; run avs-tools collect {root} ... "
                         f"first, then avs-tools sample {root}")
    sampled = {r[0] for r in ws.catalog.query("SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done'")}
    if not sampled:
        raise UsageError(f"nothing to export: none of the {len(all_clips)} clips of {root} is sampled yet; "
                         f"run avs-tools sample {root} first")
    masked = {r[0] for r in ws.catalog.query("SELECT DISTINCT clip_id FROM mask_versions WHERE kind='review'")}
    pre = {r[0] for r in ws.catalog.query("SELECT clip_id FROM stage_status WHERE stage='preannotate' AND status='done'")}
    usable = sampled & (masked | pre if include_unreviewed else masked)
    if not usable:
        if include_unreviewed or not (pre & sampled):
            raise UsageError(f"nothing to export: no clip of {root} has masks yet; run avs-tools preannotate {root} "
                             "first (then review the masks, or export the proposals with --include-unreviewed)")
        raise UsageError(f"nothing to export: no clip of {root} has reviewed masks yet; review them, or pass "
                         f"--include-unreviewed to export the {len(pre & sampled)} pre-annotated clips "
                         "(the card then says so)")
    fixed, stored = split_state(ws)
    notes = []
    if seed is not None and fixed and seed != stored:
        if stored is not None:
            notes.append(f"--seed {seed} ignored: the splits of {root} were assigned earlier with seed {stored} and "
                         f"never move (clips added since get theirs with seed {stored} too)")
            seed = stored
        else:
            notes.append(f"--seed {seed} ignored for the {fixed} clips of {root} whose splits were assigned "
                         "earlier (splits never move); it applies only to clips without a split")
    if seed is None:
        seed = stored if stored is not None else 0
    with _interrupts():
        try:
            assign_splits(ws, seed=seed, unseen=unseen)  # fingerprints every new clip: can take a while
        except KeyboardInterrupt:
            raise Interrupted(0, len(sampled), what=f"nothing was written, {given} is as it was") from None
    clips = [c for c in ws.catalog.clips() if c.clip_id in sampled]
    if split:
        known: dict[str, int] = {}
        for c in clips:
            known[c.split or "none"] = known.get(c.split or "none", 0) + 1
        want = {"test_s", "test_u"} if (fmt == "ref-avs" and split == "test") else {split}
        clips = [c for c in clips if c.split in want]
        if not clips:
            here = ", ".join(f"{k} {v}" for k, v in sorted(known.items())) or "none"
            raise UsageError(f"--split {split}: no sampled clip is in it (clips per split: {here}); collect and "
                             f"sample more clips first (avs-tools collect {root} ..., then avs-tools sample {root}), "
                             "or export another split")
    sources = {s.source_id: s for s in ws.catalog.sources()}
    names = _names(clips, sources, fmt)
    res = ExportResult(str(given), fmt, seed=seed, notes=notes)
    exported = []
    with _interrupts() as guard:
        try:
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
                    raise UsageError(f"nothing to export from {root}{f' (split {split})' if split else ''}: no clip "
                                     "has reviewed masks (review them, or pass --include-unreviewed)")
                w.close()
                res.warnings = _release_warnings(res)
                (tmp / CARD).write_text(_card(ws, res, include_unreviewed, exported, sources), encoding="utf-8")
                # the marker is part of the release: written before the manifest, so SHA256SUMS lists it
                write_marker(tmp, KIND, format=fmt, recipe=ws.recipe.name, clips=res.clips)
                (tmp / MANIFEST).write_text(_manifest(tmp), encoding="utf-8")
                res.files = sum(len(f) for _, _, f in os.walk(tmp))
                guard.deferring = True  # complete: a Ctrl-C from here on lets it be put in place
        except KeyboardInterrupt:
            raise Interrupted(0, len(clips), what=f"the release is written whole or not at all: nothing was "
                              f"written, {given} is as it was") from None
        with ws.catalog.tx() as db:
            for c in exported:
                db.execute("INSERT INTO stage_status(clip_id, stage, status, attempts, settings, updated_at) "
                           "VALUES(?, 'export', 'done', 1, ?, datetime('now')) ON CONFLICT(clip_id, stage) DO UPDATE "
                           "SET status='done', attempts=stage_status.attempts+1, settings=excluded.settings, "
                           "updated_at=excluded.updated_at", (c.clip_id, json.dumps({"fmt": fmt, "out": str(out)})))
    return res

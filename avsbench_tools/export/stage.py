"""The export stage: a workspace's sampled, annotated clips as a release in an official layout.

Masks come from human-reviewed versions only, unless --include-unreviewed (then the latest proposal
stands in for the frames no one reviewed, and the card says how many). A clip is exported whole or not
at all: one whose frames are only partly reviewed is left out (and counted) unless --include-unreviewed
lets its proposals fill the rest; one with a frame marked "unusable frame" in review is always left
out, since every official layout holds a fixed number of frames per clip. Each clip's masks go through
`masks_to_clip` (the same function synth's gold release uses) into the format's writer. Everything is
written into a temporary folder beside OUT that replaces OUT only when complete; Ctrl-C removes the
temporary folder and leaves OUT and the catalog as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.audio.wav import read_wav
from avsbench_tools.catalog.reviews import UNUSABLE
from avsbench_tools.completeness import class_verified, clip_form
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.export.card import card, provenance_counts, release_warnings
from avsbench_tools.export.options import ExportOptions
from avsbench_tools.export.output import (
    CARD,
    KIND,
    MANIFEST,
    foreign_file,
    interrupts,
    is_legacy_release,
    manifest,
    protected_paths,
)
from avsbench_tools.fsutil import atomic_dir, check_output_dir, read_marker, write_marker
from avsbench_tools.mask_store import reviewed_seconds, shown_masks
from avsbench_tools.masks_to_clip import masks_to_clip
from avsbench_tools.progress import Progress
from avsbench_tools.workspace import Workspace
from avsbench_tools.writers import ReleaseClip, open_writer


@dataclass
class ExportResult:
    out: str
    fmt: str
    clips: int = 0
    skipped_unannotated: int = 0
    skipped_partial: list[str] = field(default_factory=list)  # clips with only some frames reviewed (left out)
    skipped_unusable: dict[str, list[int]] = field(default_factory=dict)  # clip -> seconds marked unusable
    filled_seconds: int = 0  # unreviewed frames of partly reviewed clips filled with proposals
    form_unknown: list[str] = field(default_factory=list)  # AVSS clips left out: unverified classes leave v1s/v1m open
    unverified_classes: list[str] = field(default_factory=list)  # clips exported with proposals of unverified classes
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
               res: ExportResult, preannotated: set[str]) -> ReleaseClip | None:
    """The ReleaseClip of one workspace clip, or None when it is not sampled or has no usable masks."""
    f = formats.get(fmt)
    frames = ws.catalog.frames(clip.clip_id)
    audio = ws.catalog.audio(clip.clip_id)
    if not frames or audio is None:
        return None
    unusable = sorted(s for s, flags in ws.catalog.clip_flags(clip.clip_id).items() if UNUSABLE in flags)
    if unusable:
        res.skipped_unusable[clip.clip_id] = unusable
        return None
    reviewed = reviewed_seconds(ws, clip.clip_id)
    # the frames the exported form supervises (completeness.py: an AVSS clip whose masks show two classes is v1m;
    # unverified classes never decide it: an unknown form leaves the clip out, counted)
    form = clip_form(ws.recipe, clip, len(frames), shown_masks(ws, clip.clip_id, include_unreviewed), src, reviewed)
    if form.unknown:
        res.form_unknown.append(clip.clip_id)
        return None
    needed = form.needed & {fr.second for fr in frames}
    missing = needed - reviewed
    fill = include_unreviewed and clip.clip_id in preannotated
    if missing and not fill:
        if reviewed:
            res.skipped_partial.append(clip.clip_id)
        else:
            res.skipped_unannotated += 1
        return None
    versions = form.masks  # shown_masks: a reviewed frame shows its review only
    # binary layouts (S4, MS3) hold no object class: only semantic / per-object masks can carry an unverified one
    if not formats.get(ws.recipe.format).binary and any(not class_verified(v) for v in versions):
        res.unverified_classes.append(clip.clip_id)
    if reviewed:
        res.filled_seconds += len(missing)
    for v in versions:
        if v.kind == "review":
            res.from_reviews += 1
        else:
            res.from_proposals += 1
    texts: dict[int, list[str]] = {}
    nulls: list[str] = []
    if f.per_object:
        for e in ws.catalog.expressions(clip.clip_id):
            if e.is_null:
                nulls.append(e.text)
            else:
                texts.setdefault(e.fid, []).append(e.text)
    pcm, _ = read_wav(ws.path(audio.wav_path))
    rc, notes = masks_to_clip(
        f, [v.to_object_mask(ws.root) for v in versions], name=names[clip.clip_id], video_id=_video_key(src),
        start=float(clip.start), split=clip.split, frames=[_image(ws, fr.path) for fr in frames], pcm=pcm,
        logmel=np.load(ws.path(audio.logmel_path)), category=clip.category, expressions=texts,
        null_expressions=nulls, recipe=ws.recipe, avss_label=form.label)
    if notes.uncategorised:
        res.uncategorised.append(clip.clip_id)
    res.objects += notes.objects
    res.template_expressions += notes.template_expressions
    return rc


def _left_out(res: ExportResult, include_unreviewed: bool) -> list[str]:
    """Notes on the clips a review left out (also in the card)."""
    out = []
    if res.skipped_partial:
        out.append(f"{len(res.skipped_partial)} clips left out because only some of their frames are reviewed "
                   f"({', '.join(res.skipped_partial[:5])}{', ...' if len(res.skipped_partial) > 5 else ''}): review "
                   "the rest, or pass --include-unreviewed to fill them with proposals")
    if res.skipped_unusable:
        out.append(f"{len(res.skipped_unusable)} clips left out because a frame was marked 'unusable frame' in review "
                   f"({', '.join(list(res.skipped_unusable)[:5])}{', ...' if len(res.skipped_unusable) > 5 else ''})")
    if res.form_unknown:
        out.append(form_unknown_line(res.form_unknown))
    return out


def form_unknown_line(clips: list[str]) -> str:
    """The note on AVSS clips left out because unverified classes leave their single/multi-source form open."""
    return (f"{len(clips)} clips left out because their single/multi-source form (v1s or v1m) would rest on classes no "
            f"model named ({', '.join(clips[:5])}{', ...' if len(clips) > 5 else ''}): their proposals come from a "
            "backend that labels every object with the clip's category; review them (push sends all their frames), "
            "or pre-annotate with a backend that names classes")


def release_names(clips, sources, fmt: str, every=None) -> dict[str, str]:
    """Release names: the source video id where it has one clip here (S4 style), else the clip id. AVSS:
    `<video>_<n>`, n the clip's number among the video's clips in `every` (default `clips`) by start, which
    a multi-source (v1m) clip keeps as its uid and vid, as the official metadata has them (masks_to_clip
    names v1s/v2 clips <video>_<start_ms>_<end_ms> itself)."""
    per_video: dict[str, int] = {}
    for c in clips:
        k = _video_key(sources.get(c.source_id))
        per_video[k] = per_video.get(k, 0) + 1
    by_clip = formats.get(fmt).clip_names == "clip"  # MS3 <ytid>_<n>, Ref-AVS <ytid>_<start_ms>_<end_ms> already
    numbered: dict[str, int] = {}
    if formats.get(fmt).semantic:
        order = sorted(every if every is not None else clips, key=lambda c: (float(c.start), c.clip_id))
        seen: dict[str, int] = {}
        for c in order:
            k = _video_key(sources.get(c.source_id))
            numbered[c.clip_id] = seen.get(k, 0)
            seen[k] = numbered[c.clip_id] + 1
    out = {}
    for c in clips:
        k = _video_key(sources.get(c.source_id))
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in k)
        if c.clip_id in numbered:
            out[c.clip_id] = f"{safe}_{numbered[c.clip_id]}"
        else:
            out[c.clip_id] = c.clip_id if by_clip or per_video[k] != 1 else safe
    return out


def _check_request(ws: Workspace, fmt: str, split: str | None) -> formats.ReleaseFormat:
    f = formats.find(fmt)
    if f is None:
        raise UsageError(f"--format {fmt}: not a release format (one of {', '.join(formats.names())})")
    if not f.exports_from(ws.recipe.format):
        raise UsageError(f"--format {fmt}: workspace {ws.root} was built for {ws.recipe.format}")
    if split and split not in f.export_splits:
        raise UsageError(f"--split {split}: not a {fmt} split (one of {', '.join(f.export_splits)})")
    return f


def _check_out(ws: Workspace, given: Path, force: bool) -> Path:
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
    return out


def _usable(ws: Workspace, include_unreviewed: bool) -> tuple[set[str], set[str]]:
    """(sampled clip ids, pre-annotated clip ids); a one-line UsageError saying what to run when none can export."""
    root = ws.root
    n_clips = ws.catalog.count_clips()
    if not n_clips:
        raise UsageError(f"nothing to export: workspace {root} has no clips yet; run avs-tools collect {root} ... "
                         f"first, then avs-tools sample {root}")
    sampled = set(ws.catalog.clip_ids_done("sample"))
    if not sampled:
        raise UsageError(f"nothing to export: none of the {n_clips} clips of {root} is sampled yet; "
                         f"run avs-tools sample {root} first")
    masked = ws.catalog.clip_ids_with_masks("review") | ws.catalog.clip_ids_reviewed()
    pre = set(ws.catalog.clip_ids_done("preannotate"))
    if not sampled & (masked | pre if include_unreviewed else masked):
        if include_unreviewed or not (pre & sampled):
            raise UsageError(f"nothing to export: no clip of {root} has masks yet; run avs-tools preannotate {root} "
                             "first (then review the masks, or export the proposals with --include-unreviewed)")
        raise UsageError(f"nothing to export: no clip of {root} has reviewed masks yet; review them, or pass "
                         f"--include-unreviewed to export the {len(pre & sampled)} pre-annotated clips "
                         "(the card then says so)")
    return sampled, pre


def _draw_splits(ws: Workspace, seed: int | None, unseen: list[str] | None, n_sampled: int,
                 given: Path) -> tuple[int, list[str]]:
    """Give every clip without a split one; returns the seed used and notes on a --seed that cannot apply."""
    from avsbench_tools.splits import assign_splits, split_state

    fixed, stored = split_state(ws)
    notes = []
    if seed is not None and fixed and seed != stored:
        if stored is not None:
            notes.append(f"--seed {seed} ignored: the splits of {ws.root} were assigned earlier with seed {stored} "
                         f"and never move (clips added since get theirs with seed {stored} too)")
            seed = stored
        else:
            notes.append(f"--seed {seed} ignored for the {fixed} clips of {ws.root} whose splits were assigned "
                         "earlier (splits never move); it applies only to clips without a split")
    if seed is None:
        seed = stored if stored is not None else 0
    with interrupts():
        try:
            assign_splits(ws, seed=seed, unseen=unseen)  # fingerprints every new clip: can take a while
        except KeyboardInterrupt:
            raise Interrupted(0, n_sampled, what=f"nothing was written, {given} is as it was") from None
    return seed, notes


def _in_split(ws: Workspace, f: formats.ReleaseFormat, clips: list, split: str) -> list:
    known: dict[str, int] = {}
    for c in clips:
        known[c.split or "none"] = known.get(c.split or "none", 0) + 1
    want = {f.split_name("test"), f.unseen_split} - {None} if split == "test" else {split}
    chosen = [c for c in clips if c.split in want]
    if not chosen:
        here = ", ".join(f"{k} {v}" for k, v in sorted(known.items())) or "none"
        raise UsageError(f"--split {split}: no sampled clip is in it (clips per split: {here}); collect and "
                         f"sample more clips first (avs-tools collect {ws.root} ..., then avs-tools sample {ws.root}), "
                         "or export another split")
    return chosen


def export(ws: Workspace, out: Path, opts: ExportOptions | None = None,
           progress: Progress | None = None) -> ExportResult:
    """Write the workspace's release in `opts.fmt` (default: the recipe's) to OUT, with its card and SHA256SUMS.

    `opts.seed` None means the workspace's split seed (0 for a first export); clips get their split here the
    first time and keep it. Records export 'done' for every exported clip. Raises UsageError (nothing to
    export, bad OUT/format/split) before any work, Interrupted on Ctrl-C (OUT and the catalog untouched)."""
    opts = opts or ExportOptions()
    split, include_unreviewed, force, seed = opts.split, opts.include_unreviewed, opts.force, opts.seed
    progress = progress or (lambda *a: None)
    fmt = opts.fmt or ws.recipe.format
    f = _check_request(ws, fmt, split)
    given = Path(out)
    out = _check_out(ws, given, force)
    sampled, pre = _usable(ws, include_unreviewed)
    seed, notes = _draw_splits(ws, seed, opts.unseen, len(sampled), given)
    every = [c for c in ws.catalog.clips() if c.clip_id in sampled]
    clips = _in_split(ws, f, every, split) if split else every
    sources = {s.source_id: s for s in ws.catalog.sources()}
    names = release_names(clips, sources, fmt, every)
    res = ExportResult(str(given), fmt, seed=seed, notes=notes)
    exported = []
    with interrupts() as guard:
        try:
            with atomic_dir(out) as tmp:
                w = open_writer(fmt, tmp, ws.recipe)
                for i, c in enumerate(clips):
                    rc = build_clip(ws, c, sources.get(c.source_id), fmt, include_unreviewed, names, res, pre)
                    if rc is not None:
                        w.add(rc)
                        res.clips += 1
                        res.splits[c.split] = res.splits.get(c.split, 0) + 1
                        exported.append(c)
                    progress("exporting", i + 1, len(clips), c.clip_id)
                res.notes += _left_out(res, include_unreviewed)
                if res.clips == 0:
                    left = [n for n in (res.skipped_partial, res.skipped_unusable, res.form_unknown) if n]
                    why = "" if not left else f" ({'; '.join(res.notes[-len(left):])})"
                    hint = "" if include_unreviewed else " (review them, or pass --include-unreviewed)"
                    raise UsageError(f"nothing to export from {ws.root}{f' (split {split})' if split else ''}: no "
                                     f"clip has reviewed masks{hint}{why}")
                w.close()
                if opts.negative_audio:  # negative-audio copies of the test clips (avsbench_tools.negative_audio.sets)
                    from avsbench_tools.negative_audio import write_negative_sets

                    res.notes += write_negative_sets(tmp, fmt, opts.negative_audio, seed if opts.negative_seed is None
                                                     else opts.negative_seed, ws.recipe).notes
                res.warnings = release_warnings(res)
                (tmp / CARD).write_text(card(ws, res, include_unreviewed, exported, sources), encoding="utf-8")
                # the marker is part of the release: written before the manifest, so SHA256SUMS lists it
                write_marker(tmp, KIND, format=fmt, recipe=ws.recipe.name, clips=res.clips,
                             **provenance_counts(res))
                (tmp / MANIFEST).write_text(manifest(tmp), encoding="utf-8")
                res.files = sum(len(files) for _, _, files in os.walk(tmp))
                guard.deferring = True  # complete: a Ctrl-C from here on lets it be put in place
        except KeyboardInterrupt:
            raise Interrupted(0, len(clips), what=f"the release is written whole or not at all: nothing was "
                              f"written, {given} is as it was") from None
        ws.catalog.finish_many("export", [c.clip_id for c in exported], settings={"fmt": fmt, "out": str(out)})
    return res

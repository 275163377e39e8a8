"""preannotate: mask proposals for every sampled frame, so annotators correct instead of drawing.

Backends:
  grounded-sam  Grounding DINO boxes from the clip's text prompts -> SAM masks (one image
                embedding per frame, reused for all its boxes) -> tracking from a key frame.
  motion        weight-free: moving regions from dense optical flow, refined with GrabCut.
Both are audio-aware: each object and second records whether it is believed to sound, from the
per-second activity that `sample` measured (silent seconds get no sounding-object mask).
Every proposal is a row of `mask_versions` (kind 'proposal') with backend, model ids, checkpoint
hashes, thresholds and tracker. The same settings skip finished clips; new settings add a version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog import Clip
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import remove_stale_temps
from avsbench_tools.masks import ObjectMask, box_of, iou, save_versions, versions_done
from avsbench_tools.workspace import Workspace, deferred_interrupt

Progress = Callable[[str, int, int, str], None]
BACKENDS = ("grounded-sam", "motion")
TRACKERS = ("flow", "sam2", "none")
SAM2_SIDE = 1024  # frames given to SAM 2 (it works at 1024 internally)
ANALYSIS_SIDE = 320  # optical flow runs at this longer side; masks are scaled back to the frame size


@dataclass
class PreannotateOptions:
    backend: str | None = None  # None: grounded-sam when --dino and --sam are given, else motion
    dino: str | None = None
    sam: str | None = None
    sam_type: str | None = None
    prompt: list[str] | None = None
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    tracker: str = "flow"
    redetect_every: int = 3
    key_second: int | None = None  # an annotator's key frame; default: highest detection confidence
    device: str = "cpu"
    batch_size: int = 1
    allow_download: bool = False
    clips: list[str] | None = None
    audio_tagger: str | None = None  # "clap"
    clap: str | None = None
    tagger_threshold: float = 0.3
    sam2: str | None = None  # SAM 2 video checkpoint for --tracker sam2


@dataclass
class PreannotateResult:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    masks: int = 0
    backend: str = ""
    todo: int = 0  # clips this run tried
    failures: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason) of this run


def _load_image(ws: Workspace, rel: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(ws.path(rel)).convert("RGB"))


def _prompts(ws: Workspace, clip: Clip, opts: PreannotateOptions) -> dict[str, str]:
    if opts.prompt:
        return {(ws.recipe.match_category(p) or p): p for p in opts.prompt}
    if clip.category and clip.category in ws.recipe.categories:
        return {clip.category: ws.recipe.prompt_for(clip.category)}
    return dict(ws.recipe.categories)


def _gate(objs: list[ObjectMask], activity, tags: list[dict[str, float]] | None = None,
          heard: list[set[str]] | None = None) -> None:
    """Whether each object sounds in its second: the second is active (sample's activity) and, with
    a tagger, the object's category is heard in it (any heard category for an uncategorised object)."""
    for o in objs:
        if activity is None:
            o.sounding = None
            continue
        active = bool(activity.active[o.second]) if o.second < len(activity.active) else False
        o.sounding = active
        o.evidence = {**o.evidence, "activity_active": active,
                      "activity_rel_db": activity.relative_db[o.second] if o.second < len(activity.relative_db) else None}
        if tags is not None and heard is not None and o.second < len(tags):
            h = heard[o.second]
            o.sounding = active and (o.category in h if o.category in tags[o.second] else bool(h))
            o.evidence["tagger"] = {"clap": tags[o.second], "heard": sorted(h)}


def _assign_ids(per_second: dict[int, list[ObjectMask]]) -> None:
    """Stable ids without a tracker: match each second's masks to the previous second's by IoU."""
    prev: list[ObjectMask] = []
    next_fid = 0
    for sec in sorted(per_second):
        used = set()
        for o in sorted(per_second[sec], key=lambda o: -o.score):
            cands = [(iou(p.mask, o.mask), p) for p in prev if p.fid not in used and p.category == o.category]
            best = max(cands, key=lambda t: t[0], default=(0.0, None))
            if best[1] is not None and best[0] > 0.2:
                o.fid = best[1].fid
            else:
                o.fid, next_fid = next_fid, next_fid + 1
            used.add(o.fid)
        prev = per_second[sec] or prev


class _Models:
    def __init__(self, opts: PreannotateOptions):
        from avsbench_tools.preannotate.models import load_dino, load_sam

        self.dino = load_dino(opts.dino, opts.device, opts.allow_download) if opts.dino else None
        self.sam = load_sam(opts.sam, opts.device, opts.allow_download, opts.sam_type) if opts.sam else None
        self.sam2 = None
        if opts.tracker == "sam2" and opts.dino:
            from avsbench_tools.preannotate.models import load_sam2

            self.sam2 = load_sam2(opts.sam2, opts.device, opts.allow_download)
        self.clap = None
        if opts.audio_tagger == "clap":
            from avsbench_tools.preannotate.tagger import load_clap

            self.clap = load_clap(opts.clap, opts.device, opts.allow_download)


def settings_for(opts: PreannotateOptions, backend: str, models: _Models | None, prompts_mode: str) -> dict:
    s = {"backend": backend, "version": 1, "audio_gating": "sample-activity", "prompts": prompts_mode}
    if backend == "grounded-sam":
        s.update({"box_threshold": opts.box_threshold, "text_threshold": opts.text_threshold,
                  "dino": {"id": models.dino.name, "sha256": models.dino.sha},
                  "sam": {"id": models.sam.name, "sha256": models.sam.sha}, "tracker": opts.tracker,
                  "redetect_every": opts.redetect_every, "key_second": opts.key_second})
        if models.sam2 is not None:
            s["sam2"] = {"id": models.sam2.name, "sha256": models.sam2.sha}
    else:
        from avsbench_tools.preannotate import motion

        s.update({"span_s": motion.SPAN_S, "min_displacement_px": motion.MIN_DISPLACEMENT_PX, "refine": "grabcut"})
    if models is not None and models.clap is not None:
        s["audio_tagger"] = {"kind": "clap", "id": models.clap.name, "sha256": models.clap.sha,
                             "threshold": opts.tagger_threshold}
    return s


def _scale(mask: np.ndarray, shape) -> np.ndarray:
    from avsbench_tools.preannotate.flow import resize_mask

    return resize_mask(mask, shape)


def propose_grounded_sam(ws: Workspace, clip: Clip, models: _Models, opts: PreannotateOptions,
                         frames_info: list[dict], heard: list[set[str]] | None = None) -> list[ObjectMask]:
    """heard: categories heard per second (audio tagger); only those are prompted in that second."""
    from avsbench_tools.preannotate.models import best_masks

    prompts = _prompts(ws, clip, opts)
    imgs = {f["second"]: _load_image(ws, f["path"]) for f in frames_info}

    def prompts_at(s: int) -> dict[str, str]:
        if heard is None or s >= len(heard):
            return prompts
        return {c: p for c, p in prompts.items() if c in heard[s]}

    secs = sorted(imgs)
    dets: dict[int, list[ObjectMask]] = {}
    bs = max(1, opts.batch_size)
    for k in range(0, len(secs), bs):  # --batch-size frames per Grounding DINO forward pass
        chunk = secs[k:k + bs]
        for s, d in zip(chunk, models.dino.detect_batch([imgs[s] for s in chunk], [prompts_at(s) for s in chunk],
                                                         chunk, opts.box_threshold, opts.text_threshold), strict=True):
            dets[s] = d
    sam = models.sam
    current = {"sec": None}

    def set_frame(sec: int) -> None:
        if current["sec"] != sec:  # one embedding per frame, reused for every box on it
            sam.set_image(imgs[sec])
            current["sec"] = sec

    masked: dict[int, list[ObjectMask]] = {}

    def masks_at(sec: int) -> list[ObjectMask]:
        if sec not in masked:
            set_frame(sec)
            masked[sec] = [m for m in best_masks(sam, dets[sec]) if m.mask.any()]
        return masked[sec]

    if opts.tracker == "none" or not any(dets.values()):
        per = {s: masks_at(s) for s in imgs}
        _assign_ids(per)
        return [o for s in sorted(per) for o in per[s]]
    # key frame, then tracking: SAM 2 video propagation, or flow with SAM re-prompts and re-detection
    from avsbench_tools.preannotate.flow import decode_frames
    from avsbench_tools.preannotate.track import pick_key_second, track_flow, track_sam2

    key = pick_key_second(dets, opts.key_second)
    key_objs = masks_at(key)
    for i, o in enumerate(sorted(key_objs, key=lambda o: -o.score)):
        o.fid = i
    if opts.tracker == "sam2":
        if not key_objs:
            return []
        video, _ = decode_frames(ws.path(clip.path), SAM2_SIDE)
        vsize = video[0].shape[:2]
        full = next(iter(imgs.values())).shape[:2]
        sampled = {f["second"]: min(f["frame_index"], len(video) - 1) for f in frames_info}
        key_small = [ObjectMask(o.second, o.fid, o.category, _scale(o.mask, vsize), None, o.score,
                                evidence=dict(o.evidence)) for o in key_objs]
        out = []
        for t in track_sam2(video, models.sam2, sampled, key, key_small):
            if t.second == key:
                src = next(o for o in key_objs if o.fid == t.fid)
                m, ev = src.mask, {**src.evidence, **t.evidence}
            else:
                m, ev = _scale(t.mask, full), {**t.evidence, "key_second": key}
            out.append(ObjectMask(t.second, t.fid, t.category, m, box_of(m), t.score, evidence=ev, tracked=t.tracked,
                                  lost=t.lost))
        return out
    frames, _ = decode_frames(ws.path(clip.path), ANALYSIS_SIDE)
    small = frames[0].shape[:2]
    full = next(iter(imgs.values())).shape[:2]
    sy, sx = full[0] / small[0], full[1] / small[1]
    sampled = {f["second"]: min(f["frame_index"], len(frames) - 1) for f in frames_info}
    by_index = {v: k for k, v in sampled.items()}

    def to_small(o: ObjectMask) -> ObjectMask:
        return ObjectMask(o.second, o.fid, o.category, _scale(o.mask, small), None, o.score, evidence=dict(o.evidence))

    def refine(frame_index: int, box_small) -> np.ndarray | None:
        sec = by_index.get(frame_index)
        if sec is None or box_small is None:
            return None
        set_frame(sec)
        x0, y0, x1, y1 = box_small
        m, sc = sam.predict([(x0 * sx, y0 * sy, x1 * sx, y1 * sy)])
        return _scale(m[0][int(np.argmax(sc[0]))], small)

    def redetect(frame_index: int) -> list[ObjectMask]:
        sec = by_index.get(frame_index)
        return [to_small(o) for o in masks_at(sec)] if sec is not None else []

    tracked = track_flow(frames, sampled, key, [to_small(o) for o in key_objs], refine=refine, redetect=redetect,
                         redetect_every=opts.redetect_every)
    out = []
    for t in tracked:
        m = _scale(t.mask, full)
        ev = {**t.evidence, "tracker": "flow", "key_second": key}
        if t.second == key:
            src = next(o for o in key_objs if o.fid == t.fid)
            m, ev = src.mask, {**src.evidence, **ev}
        out.append(ObjectMask(t.second, t.fid, t.category, m, box_of(m), t.score, evidence=ev, tracked=t.tracked,
                              lost=t.lost))
    return out


def propose_motion_clip(ws: Workspace, clip: Clip, frames_info: list[dict]) -> list[ObjectMask]:
    from avsbench_tools.preannotate.flow import decode_frames
    from avsbench_tools.preannotate.motion import propose_motion

    frames, fps = decode_frames(ws.path(clip.path), ANALYSIS_SIDE)
    sampled = {f["second"]: min(f["frame_index"], len(frames) - 1) for f in frames_info}
    full = (frames_info[0]["height"], frames_info[0]["width"])
    cat = clip.category if clip.category in ws.recipe.categories else None
    objs = propose_motion(frames, sampled, fps, cat)
    for o in objs:
        o.mask = _scale(o.mask, full)
        o.box = box_of(o.mask)
        o.evidence = {**o.evidence, "backend": "motion"}
    return objs


def preannotate(ws: Workspace, opts: PreannotateOptions, progress: Progress | None = None) -> PreannotateResult:
    """Propose masks for every sampled clip not yet done with these settings.

    Ctrl-C stops at once: the clip in progress is dropped (it has written nothing: a clip's mask files
    and rows are written together at its end, with the interrupt held for those milliseconds), every
    finished clip is recorded, and Interrupted(done, left) is raised.
    """
    state: dict = {"done": 0, "left": None, "clips": 0}
    try:
        return _preannotate(ws, opts, progress or (lambda *a: None), state)
    except KeyboardInterrupt:
        if state["left"] is None:  # still loading models: which clips are done with these settings is not known yet
            raise Interrupted(0, state["clips"], "before any clip started: nothing was changed") from None
        raise Interrupted(state["done"], state["left"]) from None


def _check_options(opts: PreannotateOptions) -> str:
    backend = opts.backend or ("grounded-sam" if (opts.dino and opts.sam) else "motion")
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    if opts.backend is None and bool(opts.dino) != bool(opts.sam):
        given, other = ("--dino (or AVS_TOOLS_DINO)", "--sam") if opts.dino else ("--sam (or AVS_TOOLS_SAM)", "--dino")
        raise UsageError(f"{given} alone cannot take effect: grounded-sam needs {other} too "
                         "(or --backend motion for the weight-free backend)")
    if opts.tracker not in TRACKERS:
        raise UsageError(f"--tracker {opts.tracker}: expected one of {', '.join(TRACKERS)}")
    if backend == "grounded-sam" and not (opts.dino and opts.sam):
        raise UsageError("--backend grounded-sam needs --dino and --sam (local checkpoints)")
    if opts.tracker == "sam2" and backend == "grounded-sam" and not opts.sam2:
        raise UsageError("--tracker sam2 needs --sam2 (a transformers Sam2VideoModel checkpoint)")
    if not 0 <= opts.box_threshold <= 1 or not 0 <= opts.text_threshold <= 1:
        raise UsageError("--box-threshold and --text-threshold must be in [0, 1]")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    if opts.audio_tagger not in (None, "clap"):
        raise UsageError(f"--audio-tagger {opts.audio_tagger}: expected clap")
    if opts.audio_tagger == "clap" and not opts.clap:
        raise UsageError("--audio-tagger clap needs --clap (a local CLAP checkpoint)")
    return backend


def _clip_ids(ws: Workspace, opts: PreannotateOptions) -> list[str]:
    if not ws.catalog.query("SELECT 1 FROM clips LIMIT 1"):
        raise UsageError(f"workspace {ws.root} has no clips yet: run avs-tools collect {ws.root} "
                         "--local DIR (or --urls/--csv/--keywords), then avs-tools sample, first")
    rows = ws.catalog.query("SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done' ORDER BY clip_id")
    ids = [r[0] for r in rows]
    if opts.clips:
        wanted = [ws.resolve_clip(c) for c in opts.clips]
        missing = [c for c in wanted if c not in ids]
        if missing:
            raise UsageError(f"clip {missing[0]} is not sampled yet: run avs-tools sample {ws.root} --clip {missing[0]}")
        ids = [c for c in ids if c in set(wanted)]
    if not ids:
        raise UsageError(f"workspace {ws.root} has no sampled clips: run avs-tools sample {ws.root} first")
    return ids


def _preannotate(ws: Workspace, opts: PreannotateOptions, progress: Progress, state: dict) -> PreannotateResult:
    from avsbench_tools.sample import activity_of, sampled_frames

    backend = _check_options(opts)
    ids = _clip_ids(ws, opts)
    state["clips"] = len(ids)
    models = _Models(opts) if (backend == "grounded-sam" or opts.audio_tagger) else None
    prompts_mode = "cli:" + "|".join(opts.prompt) if opts.prompt else "recipe"
    settings = settings_for(opts, backend, models, prompts_mode)
    remove_stale_temps(ws.path("masks"))  # temporaries of a killed run (the workspace lock says none is running)
    res = PreannotateResult(total=len(ids), backend=backend)
    todo = [cid for cid in ids if not versions_done(ws, cid, "proposal", settings)]
    res.skipped = len(ids) - len(todo)
    res.todo = len(todo)
    state["done"], state["left"] = res.skipped, len(todo)
    progress("preannotate", res.skipped, len(ids), f"{res.skipped} already done")
    for cid in todo:
        clip = ws.catalog.clip(cid)
        info = sampled_frames(ws, cid)
        activity = activity_of(ws, cid)
        tags = heard = None
        try:
            if models is not None and models.clap is not None:
                from avsbench_tools.audio.wav import read_wav
                from avsbench_tools.preannotate.tagger import heard as heard_of

                arow = ws.catalog.query("SELECT wav_path FROM audio WHERE clip_id=?", (cid,))
                pcm, sr = read_wav(ws.path(arow[0][0]))
                tags = models.clap.scores(pcm, sr, len(info), _prompts(ws, clip, opts))
                heard = heard_of(tags, activity.active if activity else None, opts.tagger_threshold)
            if backend == "motion":
                objs = propose_motion_clip(ws, clip, info)
            else:
                objs = propose_grounded_sam(ws, clip, models, opts, info, heard)
        except (OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            with deferred_interrupt():
                ws.catalog.record_failure("preannotate", cid, reason)
                ws.catalog.set_stage(cid, "preannotate", "failed", reason=reason, settings=settings)
            res.failed += 1
            res.failures.append((cid, reason))
            state["left"] -= 1
            progress("preannotate", res.skipped + res.done + res.failed, len(ids), f"{cid} failed")
            continue
        _gate(objs, activity, tags, heard)
        with deferred_interrupt():  # the clip's mask files, rows and status as one unit
            res.masks += save_versions(ws, cid, objs, "proposal", backend, settings,
                                       seconds=[f["second"] for f in info])
            ws.catalog.set_stage(cid, "preannotate", "done", settings=settings)
            ws.catalog.resolve_failure("preannotate", cid)
            res.done += 1
            state["done"] += 1
            state["left"] -= 1
        progress("preannotate", res.skipped + res.done + res.failed, len(ids), cid)
    return res


def check_models(dino: str | None, sam: str | None, device: str = "cpu", sam_type: str | None = None,
                 allow_download: bool = False, clap: str | None = None) -> list[dict]:
    """[{role, spec, loads, device, detail}] for each configured checkpoint (never raises for a bad one)."""
    from avsbench_tools.errors import AvsError
    from avsbench_tools.preannotate.models import load_dino, load_sam
    from avsbench_tools.preannotate.tagger import load_clap

    out = []
    for role, spec, loader in (("dino", dino, lambda: load_dino(dino, device, allow_download)),
                               ("sam", sam, lambda: load_sam(sam, device, allow_download, sam_type)),
                               ("clap", clap, lambda: load_clap(clap, device, allow_download))):
        if not spec and role == "clap":
            continue
        if not spec:
            out.append({"role": role, "spec": None, "loads": False, "device": None,
                        "detail": "not configured (weight-free motion backend will be used)"})
            continue
        try:
            m = loader()
            out.append({"role": role, "spec": spec, "loads": True, "device": m.device,
                        "detail": f"sha256 {m.sha} ({type(getattr(m, 'model', None) or m).__name__})"})
        except AvsError as exc:
            out.append({"role": role, "spec": spec, "loads": False, "device": None, "detail": str(exc)})
    return out


"""The preannotate stage: the loop over sampled clips, audio gating, settings, and what "done" means.

A clip is done with a settings set when its mask set is recorded (`masks.versions_done`): the same
settings skip it, new settings add a version beside the old one. A clip's mask files, rows and
status are written together at its end, on a storing thread one clip behind the models (the main
thread; grounded-sam's frames are read two clips ahead on a loader thread); a Ctrl-C waits for the
clip being stored, so every clip is recorded whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from avsbench_tools.audio.activity import Activity
from avsbench_tools.catalog import AudioRecord, Clip, Frame
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import remove_stale_temps
from avsbench_tools.mask_store import save_versions, versions_done
from avsbench_tools.masks import ObjectMask
from avsbench_tools.preannotate.backends import Models, backend_named, check_options, load_models
from avsbench_tools.preannotate.nms import CapStats
from avsbench_tools.preannotate.options import PreannotateOptions
from avsbench_tools.preannotate.prefetch import Behind, Prefetcher
from avsbench_tools.preannotate.prompts import prompts_for
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.workspace import Workspace


@dataclass
class PreannotateResult:
    """What a run did, counted in clips (masks: versions stored by this run)."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    masks: int = 0
    backend: str = ""
    todo: int = 0  # clips this run tried
    failures: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason) of this run
    cap: CapStats = field(default_factory=CapStats)  # grounded-sam: frames of the done clips cut by --max-objects
    ids: dict[str, int] = field(default_factory=dict)  # objects (ids) created per clip done by this run
    nodes: dict[str, int] = field(default_factory=dict)  # Ray engine: clips finished per node


def settings_for(opts: PreannotateOptions, backend: str, models: Models | None, prompts_mode: str) -> dict:
    """What identifies a proposal set: backend, model ids and hashes, thresholds, tracker, tagger."""
    s = {"backend": backend, "version": 1, "audio_gating": "sample-activity", "prompts": prompts_mode}
    s.update(backend_named(backend).settings(opts, models))
    if models is not None and models.clap is not None:
        s["audio_tagger"] = {"kind": "clap", "id": models.clap.name, "sha256": models.clap.sha,
                             "threshold": opts.tagger_threshold}
    return s


def gate(objs: list[ObjectMask], activity, tags: list[dict[str, float]] | None = None,
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


def preannotate(ws: Workspace, opts: PreannotateOptions, progress: Progress | None = None) -> PreannotateResult:
    """Propose masks for every sampled clip not yet done with these settings.

    Ctrl-C stops at once: the clip in progress is dropped (it has written nothing: a clip's mask files
    and rows are written together at its end, with the interrupt held for those milliseconds), every
    finished clip is recorded, and Interrupted(done, left) is raised.
    """
    state: dict = {"done": 0, "left": None, "clips": 0}
    try:
        return _preannotate(ws, opts, progress or no_progress, state)
    except KeyboardInterrupt:
        if state["left"] is None:  # still loading models: which clips are done with these settings is not known yet
            raise Interrupted(0, state["clips"], "before any clip started: nothing was changed") from None
        raise Interrupted(state["done"], state["left"]) from None


def _clip_ids(ws: Workspace, opts: PreannotateOptions) -> list[str]:
    """The sampled clips to consider (all, or --clip ones), with a one-line error naming the step to run."""
    if not ws.catalog.count_clips():
        raise UsageError(f"workspace {ws.root} has no clips yet: run avs-tools collect {ws.root} "
                         "--local DIR (or --urls/--csv/--keywords), then avs-tools sample, first")
    ids = ws.catalog.clip_ids_done("sample")
    if opts.clips:
        wanted = [ws.resolve_clip(c) for c in opts.clips]
        missing = [c for c in wanted if c not in ids]
        if missing:
            raise UsageError(f"clip {missing[0]} is not sampled yet: run avs-tools sample {ws.root} --clip {missing[0]}")
        ids = [c for c in ids if c in set(wanted)]
    if not ids:
        raise UsageError(f"workspace {ws.root} has no sampled clips: run avs-tools sample {ws.root} first")
    return ids


@dataclass
class _ClipInputs:
    """What one clip's proposal reads: its record, sampled frames, audio, per-second activity, tagger output."""

    clip: Clip
    frames: list[Frame]
    audio: AudioRecord | None
    activity: Activity | None
    tags: list[dict[str, float]] | None = None
    heard: list[set[str]] | None = None


def _inputs(ws: Workspace, cid: str) -> _ClipInputs:
    audio = ws.catalog.audio(cid)
    activity = Activity.from_dict(audio.activity) if audio is not None and audio.activity else None
    return _ClipInputs(ws.catalog.clip(cid), ws.catalog.frames(cid), audio, activity)


def _listen(ws: Workspace, inp: _ClipInputs, models: Models, opts: PreannotateOptions) -> None:
    """CLAP scores per second and the categories heard in each."""
    from avsbench_tools.audio.wav import read_wav
    from avsbench_tools.preannotate.tagger import heard

    if inp.audio is None:
        raise ValueError("no sampled audio recorded (run avs-tools sample again)")
    pcm, sr = read_wav(ws.path(inp.audio.wav_path))
    inp.tags = models.clap.scores(pcm, sr, len(inp.frames), prompts_for(ws, inp.clip, opts.prompt))
    inp.heard = heard(inp.tags, inp.activity.active if inp.activity else None, opts.tagger_threshold)


def _propose(ws: Workspace, inp: _ClipInputs, backend: str, models: Models | None,
             opts: PreannotateOptions, media=None, cap: CapStats | None = None) -> list[ObjectMask]:
    if models is not None and models.clap is not None:
        _listen(ws, inp, models, opts)
    return backend_named(backend).propose(ws, inp.clip, inp.frames, models, opts, inp.heard, media, cap)


PREFETCH_CLIPS = 2  # clips whose frames are read ahead of the models (a backend with a prefetch: grounded-sam)


def _loader(ws: Workspace, backend: str, opts: PreannotateOptions):
    """What the loader thread reads ahead for a clip (None: the backend reads its own input)."""
    prefetch = backend_named(backend).prefetch
    if prefetch is None:
        return None
    return lambda inp: prefetch(ws, inp.clip, inp.frames, opts)


def _preannotate(ws: Workspace, opts: PreannotateOptions, progress: Progress, state: dict) -> PreannotateResult:
    backend = check_options(opts)
    ids = _clip_ids(ws, opts)
    state["clips"] = len(ids)
    ray = opts.engine is not None and opts.engine.ray  # the Ray engine's actors load their own models;
    # the driver loads them on its CPU only to identify them (settings)
    models = load_models(replace(opts, device="cpu") if ray else opts)
    prompts_mode = "cli:" + "|".join(opts.prompt) if opts.prompt else "recipe"
    settings = settings_for(opts, backend, models, prompts_mode)
    remove_stale_temps(ws.path("masks"))  # temporaries of a killed run (the workspace lock says none is running)
    res = PreannotateResult(total=len(ids), backend=backend)
    todo = [cid for cid in ids if not versions_done(ws, cid, "proposal", settings)]
    res.skipped = len(ids) - len(todo)
    res.todo = len(todo)
    state["done"], state["left"] = res.skipped, len(todo)
    progress("preannotate", res.skipped, len(ids), f"{res.skipped} already done")
    inputs = [_inputs(ws, cid) for cid in todo]  # catalog reads here: the loader thread reads only files
    if ray:  # one model-holding actor per GPU; results stored here, as they arrive (avsbench_tools.engine)
        from avsbench_tools.engine.preannotate import propose_on_ray

        propose_on_ray(ws, inputs, backend, opts, lambda inp, outcome, cap: _store(
            ws, inp, outcome, cap or CapStats(), backend, settings, res, state), progress, res)
        return res
    store = Behind(lambda info: progress("preannotate", res.skipped + res.done + res.failed, res.total, info))
    try:
        with Prefetcher(inputs, _loader(ws, backend, opts), PREFETCH_CLIPS, "avs-frames") as loaded:
            for inp, media, error in loaded:
                cap = CapStats()
                try:
                    if error is not None:  # reading its frames failed on the loader thread
                        raise error
                    outcome = _propose(ws, inp, backend, models, opts, media, cap)
                except (OSError, ValueError) as exc:
                    outcome = exc
                store.put(_store, ws, inp, outcome, cap, backend, settings, res, state)
    finally:
        store.wait()
    return res


def _store(ws: Workspace, inp: _ClipInputs, outcome: list[ObjectMask] | Exception, cap: CapStats, backend: str,
           settings: dict, res: PreannotateResult, state: dict) -> str:
    """Gate and store a clip's proposals, or record its failure (on the storing thread); -> progress info."""
    cid = inp.clip.clip_id
    if isinstance(outcome, Exception):
        reason = f"{type(outcome).__name__}: {outcome}"[:300]
        ws.catalog.fail("preannotate", cid, reason, settings=settings)
        res.failed += 1
        res.failures.append((cid, reason))
        state["left"] -= 1
        return f"{cid} failed"
    objs = outcome
    gate(objs, inp.activity, inp.tags, inp.heard)
    res.masks += save_versions(ws, cid, objs, "proposal", backend, settings, seconds=[f.second for f in inp.frames])
    ws.catalog.finish("preannotate", cid, settings)
    res.done += 1
    res.cap.add(cap)
    res.ids[cid] = len({o.fid for o in objs if o.mask is not None and o.mask.any()})
    state["done"] += 1
    state["left"] -= 1
    return cid

"""The sample stage: the frames and audio that annotation and export use, decoded once per clip.

For each clip: one frame per second by the recipe's rule (AVSBench: the frame near the end of the
second, `int(l*fps + 15/16*fps)`; Ref-AVS: the first frame of the second, `ceil(l*fps)`), stored at
source resolution with its presentation time; a 16 kHz 16-bit WAV; VGGish log-mel examples
[T, 1, 96, 64]; per-second sound activity; optionally VGGish embeddings [T, 128].
One clip is `sample.clip.sample_clip` (decoding: `media.decode.decode_clip`); this module runs it
over the workspace on a thread pool, records failures, and stops cleanly on Ctrl-C. A re-run skips
finished clips.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.catalog import Clip
from avsbench_tools.engine.options import EngineOptions
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import atomic_write_bytes, remove_stale_temps
from avsbench_tools.media.decode import DecodeError
from avsbench_tools.progress import Progress
from avsbench_tools.sample.clip import SampleStopped, sample_clip, sample_settings
from avsbench_tools.sample.outputs import audio_paths, npy_bytes
from avsbench_tools.workspace import Workspace, deferred_interrupt

GRACE_S = 0.8  # after Ctrl-C, clips in progress get this long to finish (and be recorded) before they stop
#: Clips handed to the pool at a time, per job: the workers never wait for the main thread, and a main thread
#: that stops (Ctrl-C, an error, a progress report that blocks) leaves at most this many per job to finish,
#: not the whole workspace queued behind them.
IN_FLIGHT_PER_JOB = 2


@dataclass
class SampleOptions:
    """What `avs-tools sample` was asked: worker threads, optional VGGish weights, which clips."""

    jobs: int = 2
    vggish_weights: Path | None = None
    device: str = "cpu"
    retry_failed: bool = False
    clips: list[str] | None = None  # only these clip ids
    engine: EngineOptions | None = None  # None: the local engine (threads); see avsbench_tools.engine


@dataclass
class SampleResult:
    """What a sample run did (the CLI prints it; failures also go to the ledger)."""

    total: int = 0
    sampled: int = 0
    skipped: int = 0
    failed: int = 0  # failed in this run plus earlier failures not retried
    embedded: int = 0
    todo: int = 0  # clips this run tried
    failures: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason) of this run
    nodes: dict[str, int] = field(default_factory=dict)  # Ray engine: clips finished per node


def _settle(futs: dict[Future, Clip], stop_now: Callable[[], None], timeout: float) -> None:
    """Wait (bounded) for the clips in progress to finish or stop; a second Ctrl-C stops them at once."""
    end = time.monotonic() + timeout
    while True:
        running = [f for f in futs if not f.done()]
        if not running or time.monotonic() >= end:
            return
        try:
            wait(running, timeout=max(0.0, end - time.monotonic()))
        except KeyboardInterrupt:
            stop_now()


def sample(ws: Workspace, opts: SampleOptions, progress: Progress | None = None) -> SampleResult:
    """Sample every collected clip that is not sampled yet (or whose settings changed).

    Ctrl-C: no new clip starts, clips in progress get GRACE_S to finish (then stop, leaving no file),
    every finished clip is recorded, and Interrupted(done, left) is raised.
    """
    try:
        return _sample(ws, opts, progress or (lambda *a: None))
    except KeyboardInterrupt:  # before or after the clip loop (loading weights, listing clips)
        settings = sample_settings(ws)
        ids = set(opts.clips) if opts.clips else None
        states = {st.clip_id: st for st in ws.catalog.stage_states("sample")}
        rows = [states.get(c.clip_id) for c in ws.catalog.clips() if ids is None or c.clip_id in ids]
        done = sum(1 for st in rows if st is not None and st.status == "done" and st.settings == settings)
        raise Interrupted(done, sum(1 for st in rows if st is None or st.status != "failed") - done) from None


def _sample(ws: Workspace, opts: SampleOptions, progress: Progress) -> SampleResult:
    if opts.jobs < 1:
        raise UsageError(f"--jobs {opts.jobs}: must be at least 1")
    clips = ws.catalog.clips()
    if not clips:
        raise UsageError(f"workspace {ws.root} has no clips yet: run avs-tools collect {ws.root} "
                         "--local DIR (or --urls/--csv/--keywords) first")
    if opts.clips:
        wanted = {ws.resolve_clip(c) for c in opts.clips}
        clips = [c for c in clips if c.clip_id in wanted]
    model = None
    if opts.vggish_weights is not None:  # a missing file or an unusable device is an error before any work
        from avsbench_tools.audio.vggish import load_vggish

        model = load_vggish(opts.vggish_weights, opts.device)
    for sub in ("frames", "audio"):  # temporaries of a killed run (the workspace lock says none is running)
        remove_stale_temps(ws.path(sub))
    settings = sample_settings(ws)
    res = SampleResult(total=len(clips))
    todo = []
    failed_before = 0
    states = {st.clip_id: st for st in ws.catalog.stage_states("sample")}
    for c in clips:
        st = states.get(c.clip_id)
        if st is not None and st.status == "done" and (st.settings or {}) == settings:
            res.skipped += 1
        elif st is not None and st.status == "failed" and not opts.retry_failed:
            failed_before += 1
        else:
            todo.append(c)
    res.todo = len(todo)
    progress("sampling", res.skipped, len(clips), f"{res.skipped} already sampled")
    if opts.engine is not None and opts.engine.ray:  # Ray tasks; the driver writes (avsbench_tools.engine)
        from avsbench_tools.engine.sample import sample_on_ray

        sample_on_ray(ws, todo, settings, opts.engine, progress, res)
        res.failed = len(res.failures) + failed_before
        if model is not None:
            res.embedded = embed_workspace(ws, opts.vggish_weights, opts.device, progress, loaded=model)
        return res
    stop = threading.Event()
    deadline = [0.0]

    def due() -> bool:
        return stop.is_set() and time.monotonic() >= deadline[0]

    def stop_at(delay: float) -> None:
        deadline[0] = time.monotonic() + delay
        stop.set()

    def run_one(c: Clip) -> tuple[str, str]:
        if stop.is_set():
            return "stopped", ""
        try:
            sample_clip(ws, c, writer, settings, cancel=due)
        except SampleStopped:
            return "stopped", ""
        except DecodeError as exc:
            reason = str(exc)
            ws.catalog.fail("sample", c.clip_id, reason, detail=c.path, settings=settings)
            return "failed", reason
        return "done", ""

    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="avs-sample-write")
    pool = ThreadPoolExecutor(max_workers=opts.jobs, thread_name_prefix="avs-sample")
    futs: dict[Future, Clip] = {}

    def tally() -> None:
        res.sampled = res.failed = 0
        res.failures = []
        for f, c in futs.items():
            if f.done() and not f.cancelled() and f.exception() is None:
                kind, reason = f.result()
                res.sampled += kind == "done"
                if kind == "failed":
                    res.failures.append((c.clip_id, reason))
        res.failed = len(res.failures) + failed_before

    queue = iter(todo)
    running: set[Future] = set()

    def submit_next() -> None:
        c = next(queue, None)
        if c is not None:
            f = pool.submit(run_one, c)
            futs[f] = c
            running.add(f)

    try:
        for _ in range(IN_FLIGHT_PER_JOB * opts.jobs):
            submit_next()
        n = res.skipped
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                running.discard(fut)
                fut.result()  # a bug or a disk error stops the run (below), after the other workers stop
                submit_next()
                n += 1
                progress("sampling", n, len(clips), futs[fut].clip_id)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        stop_at(GRACE_S if interrupted else 0.0)
        pool.shutdown(wait=False, cancel_futures=True)
        _settle(futs, lambda: stop_at(0.0), GRACE_S + 3.0)
        if not interrupted:
            raise
        tally()
        left = len(todo) - res.sampled - len(res.failures)
        raise Interrupted(res.skipped + res.sampled, left,
                          f"{len(res.failures)} failed" if res.failures else "") from None
    finally:
        pool.shutdown(wait=True)
        writer.shutdown(wait=True)
    tally()
    if model is not None:
        res.embedded = embed_workspace(ws, opts.vggish_weights, opts.device, progress, loaded=model)
    return res


def embed_workspace(ws: Workspace, weights: Path, device: str = "cpu", progress: Progress | None = None,
                    loaded: tuple | None = None) -> int:
    """128-d VGGish embeddings [T, 128] for every sampled clip that has none from these weights.

    `loaded`: (model, digest) from load_vggish, when the caller loaded them already. Ctrl-C keeps
    every finished embedding and raises Interrupted."""
    from avsbench_tools.audio.vggish import embed, load_vggish

    progress = progress or (lambda *a: None)
    model, digest = loaded if loaded is not None else load_vggish(weights, device)
    device = str(next(model.parameters()).device)
    rows = ws.catalog.audios(ws.catalog.clip_ids_done("sample"))
    n = have = 0
    try:
        for i, r in enumerate(rows):
            out = audio_paths(ws, r.clip_id)["vggish"]
            marker = f"{ws.rel(out)}#{digest}"
            if r.embedding_path == marker and out.exists():
                have += 1
                continue
            ex = np.load(ws.path(r.logmel_path))
            emb = embed(model, ex, device)
            with deferred_interrupt():  # the file and its row together
                atomic_write_bytes(out, npy_bytes(emb.astype(np.float32)))
                ws.catalog.set_embedding(r.clip_id, marker)
            n += 1
            progress("vggish", i + 1, len(rows), r.clip_id)
    except KeyboardInterrupt:
        raise Interrupted(have + n, len(rows) - have - n, "VGGish embeddings") from None
    return n

"""The collect stage: `collect(ws, opts, progress)` queues the requested sources, then downloads,
checks and cuts each one in worker threads, resumable.

Each source is downloaded once (catalog status + yt-dlp download archive), checked (licence,
duration, height, audio, length), then cut into exact clips (`cut.py`). It ends as clips or as a
ledger row (`ledger.py`: retryable failures vs permanent rejections). Finished files are written
under temporary names and renamed, and a catalog row is committed only after its file is in place,
so kill -9 at any point is safe; Ctrl-C stops the workers, kills their ffmpeg, removes partial files
and raises Interrupted. Paths are stored relative to the workspace, so a moved workspace resumes.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from avsbench_tools.catalog import Clip, Source, now
from avsbench_tools.collect.cut import check_media, clip_id_for, clip_starts, cut_clip
from avsbench_tools.collect.download import download_source, remove_partials
from avsbench_tools.collect.enqueue import enqueue_sources
from avsbench_tools.collect.ledger import SourceError, classify_error, is_permanent, record, source_label
from avsbench_tools.collect.options import CollectOptions, CollectResult
from avsbench_tools.collect.sources import safe_id
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import remove_stale_temps
from avsbench_tools.media import Stopped
from avsbench_tools.progress import Progress
from avsbench_tools.workspace import Workspace


class _Counter:
    def __init__(self, total: int, progress: Progress | None, stage: str):
        self.lock = threading.Lock()
        self.total, self.progress, self.stage = total, progress, stage
        self.done = self.failed = self.cuts = 0

    def cut(self) -> None:
        with self.lock:
            self.cuts += 1
            if self.progress:
                self.progress("cutting", self.cuts, self.cuts, f"{self.cuts} clips cut")

    def tick(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if self.progress:
                self.progress(self.stage, self.done + self.failed, self.total, f"done {self.done} / failed {self.failed}")

    @property
    def finished(self) -> int:
        with self.lock:
            return self.done + self.failed


def process_source(ws: Workspace, src: Source, opts: CollectOptions, on_cut: Callable[[], None] | None = None,
                   stop: threading.Event | None = None) -> int:
    """Download, check and cut one source. Returns the number of new clips; raises SourceError."""
    cat = ws.catalog
    seconds = opts.seconds or ws.recipe.default_seconds
    fps = opts.fps or ws.recipe.fps
    path, meta = download_source(ws, src, opts, stop)
    pr = check_media(path, seconds, opts, local=src.kind == "local")
    extra = {"path": ws.stored(path), "duration": pr.duration, "width": pr.width, "height": pr.height,
             "fetched_at": src.fetched_at or now()}
    for k in ("title", "uploader", "license"):
        if meta.get(k):
            extra[k] = meta[k]
    if meta.get("id") and not src.video_id:
        extra["video_id"] = safe_id(str(meta["id"]), 64)
    if stop is not None and stop.is_set():
        raise Stopped()
    cat.set_source_status(src.source_id, "downloaded", None, **extra)
    video_key = extra.get("video_id") or src.video_id or src.source_id
    if src.start is not None and src.start + seconds > pr.duration + 1e-3:
        raise SourceError(f"too short: start {src.start:g} s + {seconds} s is past the end ({pr.duration:.2f} s)",
                          kind="rejected")
    new = 0
    for n, start in enumerate(clip_starts(pr.duration, seconds, src.start, opts.clips_per_video)):
        cid = clip_id_for(ws.recipe, video_key, start, seconds, n)
        dst = ws.path("clips", f"{cid}.mp4")
        if cat.clip(cid) is not None and dst.exists():
            continue
        if stop is not None and stop.is_set():
            raise Stopped()
        out = cut_clip(path, dst, start, seconds, fps, pr.fps, stop)
        cat.add_clip(Clip(clip_id=cid, source_id=src.source_id, start=float(start), seconds=seconds,
                          category=src.category, path=ws.rel(dst), fps=float(fps), width=out.width, height=out.height,
                          n_frames=out.n_frames, has_audio=int(out.has_audio), split=src.split_hint))
        new += 1
        if on_cut:
            on_cut()
    cat.set_source_status(src.source_id, "done", None)
    cat.resolve_failure("collect", src.source_id)
    return new


def _children() -> list[int]:
    """Process ids of this process's children (Linux /proc; empty elsewhere)."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                pids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return pids


def _kill_children() -> None:
    """Kill and reap every child process (an ffmpeg a stuck worker still waits on)."""
    kids = _children()
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 0.5
    for pid in kids:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by its owner thread
                break
            if done:
                break
            time.sleep(0.01)



def _display_counts(ws: Workspace, res: CollectResult) -> None:
    for f in ws.catalog.failures("collect"):
        if is_permanent(f):
            res.open_rejected += 1
        else:
            res.open_failed += 1


def _requeue(ws: Workspace, opts: CollectOptions) -> int:
    """Put back to 'pending' the failed sources (--retry-failed) and the rejections by a filter this
    run's options might let through. Returns how many failed sources are retried."""
    cat = ws.catalog
    retried = 0
    if opts.retry_failed:
        for f in cat.failures("collect"):
            if f.item.startswith("search:") or is_permanent(f):
                continue
            src = cat.source(f.item)
            if src is not None and src.status == "failed":
                cat.set_source_status(src.source_id, "pending", None)
                retried += 1
    for src in cat.sources("rejected"):
        # a rejection by a filter is reconsidered when this run's options might let the source through
        reason = src.reason or ""
        if (reason.startswith("rejected: licence") and opts.any_license) or \
                (reason.startswith("rejected: longer") and opts.max_duration is None) or \
                (reason.startswith("rejected: height") and opts.min_height is None):
            cat.set_source_status(src.source_id, "pending", None)
    return retried


def collect(ws: Workspace, opts: CollectOptions, progress: Progress | None = None) -> CollectResult:
    """Run the collect stage: queue the sources `opts` asks for, then download, check and cut every
    source not done yet (`opts.jobs` at a time). Idempotent: finished sources and clips are skipped.

    `progress(stage, done, total, info)` is called from the worker threads. Returns a CollectResult
    (what this run did, its failures and notes, or `idle`: why it had nothing to do). A UsageError
    for options that cannot work, before anything is written. Ctrl-C (KeyboardInterrupt in the
    calling thread): workers stop, child processes are killed, partial files removed, finished clips
    stay recorded, and Interrupted(done, left) is raised.
    """
    if opts.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    seconds = opts.seconds or ws.recipe.default_seconds
    if seconds not in ws.recipe.clip_seconds:
        raise UsageError(f"--seconds {seconds}: recipe {ws.recipe.name} cuts clips of "
                         f"{' or '.join(f'{s} s' for s in ws.recipe.clip_seconds)}")
    if opts.world is not None and not (opts.local or opts.urls):
        opts = dataclasses.replace(opts, local=Path(opts.world) / "videos")
    cat = ws.catalog
    res = CollectResult()
    try:
        remove_stale_temps(ws.path("clips"))
        enqueue_sources(ws, opts, progress, res)
        retried = _requeue(ws, opts)
    except KeyboardInterrupt:
        left = len(cat.sources("pending")) + len(cat.sources("downloaded"))
        raise Interrupted(0, left, "while queueing sources") from None
    todo = [s for s in cat.sources() if s.status in ("pending", "downloaded")]
    res.skipped = len(cat.sources("done"))
    res.sources += len(todo)
    if not todo:
        _idle_reason(ws, opts, res, retried)
    elif opts.engine is not None and opts.engine.ray:  # tasks spread over the nodes (avsbench_tools.engine)
        from avsbench_tools.engine.collect import collect_on_ray

        collect_on_ray(ws, opts, res, todo, progress or (lambda *a: None))
    else:
        _Workers(ws, opts, res, todo, progress).run()
    res.clips = cat.count_clips()
    _display_counts(ws, res)
    return res


class _Workers:
    """The sources of one run, processed by `opts.jobs` daemon threads, with retries and a per-host
    circuit breaker: after 3 connection failures to one host, its other sources are recorded as
    network failures at once (offline, thousands of rows fail in seconds, not hours)."""

    def __init__(self, ws: Workspace, opts: CollectOptions, res: CollectResult, todo: list[Source],
                 progress: Progress | None):
        self.ws, self.opts, self.res, self.todo = ws, opts, res, todo
        kinds = {s.kind for s in todo}
        stage = "copying" if kinds == {"local"} else "downloading" if "local" not in kinds else "fetching"
        self.counter = _Counter(len(todo), progress, stage)
        self.stop = threading.Event()
        self.host_failures: dict[str, int] = {}
        self.lock = threading.Lock()
        self.crashed: list[BaseException] = []
        self.jobs: queue.SimpleQueue[Source] = queue.SimpleQueue()
        for s in todo:
            self.jobs.put(s)

    @staticmethod
    def host(src: Source) -> str:
        return urlparse(src.url or "").netloc

    def fail(self, src: Source, err: SourceError) -> None:
        if err.interrupted and self.stop.wait(1.0):
            raise Stopped()  # the child died of the same Ctrl-C: not a failure of the source
        if self.stop.is_set():
            raise Stopped()
        cat, res = self.ws.catalog, self.res
        status = "rejected" if err.permanent else "failed"
        cat.set_source_status(src.source_id, status, err.reason)
        record(cat, src.source_id, err.reason, err.detail or None, {"url": src.url, "source": source_label(src)},
               err.permanent)
        with self.lock:
            if err.permanent:
                res.rejected += 1
            else:
                res.failed += 1
            res.failures.append((source_label(src), err.reason, err.permanent))
        self.counter.tick("failed")

    def work(self, src: Source) -> None:
        opts, stop, host = self.opts, self.stop, self.host(src)
        if src.kind != "local" and self.host_failures.get(host, 0) >= 3:
            self.fail(src, SourceError("network error (skipped: network unreachable)",
                                       "earlier downloads failed to connect", network=True))
            return
        attempt = 0
        while True:
            try:
                n_new = process_source(self.ws, src, opts, on_cut=self.counter.cut, stop=stop)
                with self.lock:
                    self.res.new_clips += n_new
                    self.host_failures[host] = 0
                self.counter.tick("done")
                if opts.sleep and stop.wait(opts.sleep):
                    raise Stopped()
                return
            except SourceError as err:
                retry = err.kind == "error" and not err.network and not err.interrupted and \
                    attempt < opts.retries and classify_error(err.reason)[1]
                if err.network:
                    with self.lock:
                        self.host_failures[host] = self.host_failures.get(host, 0) + 1
                if retry:
                    attempt += 1
                    if stop.wait(min(2 ** attempt, 30) * (0.5 if opts.sleep == 0 else 1)):
                        raise Stopped() from None
                    src = self.ws.catalog.source(src.source_id) or src
                    continue
                self.fail(src, err)
                return

    def runner(self) -> None:
        while not self.stop.is_set():
            try:
                src = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                self.work(src)
            except Stopped:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
                if not self.stop.is_set():
                    self.crashed.append(exc)
                    self.stop.set()
                return

    def run(self) -> None:
        """Process every source; on Ctrl-C stop the workers, record what finished, raise Interrupted."""
        # daemon threads: a worker stuck in a network read cannot keep the process alive after Ctrl-C
        threads = [threading.Thread(target=self.runner, name=f"collect-{i}", daemon=True)
                   for i in range(min(self.opts.jobs, len(self.todo)))]
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.1)
        except KeyboardInterrupt:
            self.stop.set()
            deadline = time.monotonic() + 1.5  # items in flight record themselves if they finish by then
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            _kill_children()
            remove_partials(self.ws)
            done = self.counter.finished
            raise Interrupted(done, len(self.todo) - done) from None
        if self.crashed:
            _kill_children()
            raise self.crashed[0]


def _idle_reason(ws: Workspace, opts: CollectOptions, res: CollectResult, retried: int) -> None:
    """Why a run found nothing to download or cut (or a UsageError when nothing was asked)."""
    cat = ws.catalog
    asked = bool(opts.keywords or opts.urls or opts.csv or opts.local)
    n_sources = len(cat.sources())
    if not asked and not opts.retry_failed and n_sources == 0:
        raise UsageError(f"nothing to collect into {ws.root}: give --urls FILE, --local DIR, --csv FILE, "
                         "--keywords TEXT or --world WORLD")
    if res.sources:  # this run rejected files on sight: that was its work
        return
    fails = cat.failures("collect")
    n_fail = sum(1 for f in fails if not is_permanent(f))
    n_rej = len(fails) - n_fail
    if n_sources == 0:
        given = [f"--urls {opts.urls}" if opts.urls else "", f"--csv {opts.csv}" if opts.csv else "",
                 f"--local {opts.local}" if opts.local else "", "--keywords" if opts.keywords else ""]
        parts = [f"{' '.join(g for g in given if g)} gave no source (an empty list or folder?)"]
    elif opts.retry_failed and not retried:
        parts = ["no failed source to retry"]
    else:
        parts = [f"all {res.skipped} source(s) are already collected ({cat.count_clips()} clips in the workspace)"]
    if n_fail and not (opts.retry_failed and retried):
        parts.append(f"{n_fail} failed: retry them with avs-tools collect {ws.root} --retry-failed")
    if n_rej:
        parts.append(f"{n_rej} rejected for good, not retried (avs-tools status {ws.root} --failures)")
    res.idle = "; ".join(parts)

"""`collect` on Ray Data: each source's download, check and cut run as one task (a `map` with Ray's
SPREAD scheduling, so the sources are spread over the nodes and each node fetches from its own
address); the task returns the source file and the cut clips as bytes, and the driver writes them
and their catalog rows (one writer).

Per node, the local engine's rules: a task retries a transient error with the same backoff
(`--retries`), sleeps `--sleep` after each download before taking the next source, and after 3
connection failures to one host the same worker process (per node) records that host's other
sources as network failures at once. A failure's ledger row records the node it happened on.
A `--local` source's file goes to the task as bytes, read by a Ray Data map on the driver's node (or
by path with --ray-shared-workspace). A task whose node died runs again elsewhere (TASK_RETRIES).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from avsbench_tools.catalog import Clip, Source, now
from avsbench_tools.engine.cluster import ray_cluster
from avsbench_tools.engine.nodes import record_nodes
from avsbench_tools.engine.sample import TASK_RETRIES
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.workspace import Workspace

_HOST_FAILURES: dict[str, int] = {}  # per worker process (per node): connection failures by host


@dataclass
class FetchedSource:
    """What a collect task returns: the source's metadata and file, its clips, or its error."""

    source_id: str
    node: str
    file_name: str | None = None  # sources/<name> (downloads only)
    file_data: bytes | None = None
    extra: dict = field(default_factory=dict)  # duration, width, height, title...
    clips: list[tuple] = field(default_factory=list)  # (clip_id, start, width, height, n_frames, has_audio, bytes)
    error: tuple | None = None  # (reason, detail, kind, network)


class _NodeWs:
    """What download/cut read of a workspace (`path`, `recipe`), in a scratch folder of the node."""

    def __init__(self, root: Path, recipe):
        self.root, self.recipe = root, recipe

    def path(self, *parts) -> Path:
        return self.root.joinpath(*map(str, parts))


def fetch_source(src: Source, data, opts, recipe) -> FetchedSource:
    """Download (or take), check and cut one source on this node, with the local engine's retries."""
    from avsbench_tools.collect.ledger import SourceError, classify_error
    from avsbench_tools.engine.cluster import node_ip

    out = FetchedSource(src.source_id, node_ip())
    host = urlparse(src.url or "").netloc
    if src.kind != "local" and _HOST_FAILURES.get(host, 0) >= 3:
        out.error = ("network error (skipped: network unreachable)", "earlier downloads failed to connect",
                     "error", True)
        return out
    attempt = 0
    while True:
        tmp = Path(tempfile.mkdtemp(prefix="avs-ray-collect-"))
        try:
            _fetch(out, src, data, opts, recipe, _NodeWs(tmp, recipe))
            _HOST_FAILURES[host] = 0
            if opts.sleep and src.kind != "local":
                time.sleep(opts.sleep)  # polite pause of this node before its next download
            return out
        except SourceError as err:
            if err.network:
                _HOST_FAILURES[host] = _HOST_FAILURES.get(host, 0) + 1
            retry = err.kind == "error" and not err.network and not err.interrupted and \
                attempt < opts.retries and classify_error(err.reason)[1]
            if retry:
                attempt += 1
                time.sleep(min(2 ** attempt, 30) * (0.5 if opts.sleep == 0 else 1))
                out = FetchedSource(src.source_id, out.node)
                continue
            out.error = (err.reason, err.detail, err.kind, err.network)
            return out
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _fetch(out: FetchedSource, src: Source, data, opts, recipe, nws: _NodeWs) -> None:
    from avsbench_tools.collect.cut import check_media, clip_id_for, clip_starts, cut_clip
    from avsbench_tools.collect.download import download_source
    from avsbench_tools.collect.ledger import SourceError
    from avsbench_tools.collect.sources import safe_id

    seconds = opts.seconds or recipe.default_seconds
    fps = opts.fps or recipe.fps
    if src.kind == "local":
        if isinstance(data, bytes):
            path = nws.path("local", Path(src.path).name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            path = Path(data)
        meta: dict = {}
    else:
        nws.path("sources").mkdir(parents=True, exist_ok=True)
        path, meta = download_source(nws, dataclasses.replace(src, path=None, status="pending"), opts)
        out.file_name, out.file_data = path.name, path.read_bytes()
    pr = check_media(path, seconds, opts, local=src.kind == "local")
    extra = {"duration": pr.duration, "width": pr.width, "height": pr.height}
    for k in ("title", "uploader", "license"):
        if meta.get(k):
            extra[k] = meta[k]
    if meta.get("id") and not src.video_id:
        extra["video_id"] = safe_id(str(meta["id"]), 64)
    out.extra = extra
    if src.start is not None and src.start + seconds > pr.duration + 1e-3:
        raise SourceError(f"too short: start {src.start:g} s + {seconds} s is past the end ({pr.duration:.2f} s)",
                          kind="rejected")
    video_key = extra.get("video_id") or src.video_id or src.source_id
    nws.path("clips").mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(clip_starts(pr.duration, seconds, src.start, opts.clips_per_video)):
        cid = clip_id_for(recipe, video_key, start, seconds, n)
        dst = nws.path("clips", f"{cid}.mp4")
        c = cut_clip(path, dst, start, seconds, fps, pr.fps)
        out.clips.append((cid, float(start), c.width, c.height, c.n_frames, int(c.has_audio), dst.read_bytes()))


def fetch_job(job, opts, recipe) -> FetchedSource:
    """The task of one source (Ray Data map, spread over the nodes): a `--local` file's bytes (read on the
    driver's node) or shared path, or nothing (a download from this node's address)."""
    from avsbench_tools.engine.cluster import node_ip

    src, path = job.item
    if job.error is not None:
        return FetchedSource(src.source_id, node_ip(), error=(job.error, str(path), "error", False))
    return fetch_source(src, job.data(path) if path is not None else None, opts, recipe)


def collect_on_ray(ws: Workspace, opts, res, todo: list[Source], progress) -> None:
    """Process `todo` on Ray, writing each finished source's files and rows as its result arrives.
    Ctrl-C: finished sources stay recorded, the rest are cancelled, Interrupted(done, left)."""
    from avsbench_tools.engine import ray_data as data
    from avsbench_tools.errors import Interrupted

    kinds = {s.kind for s in todo}
    stage = "copying" if kinds == {"local"} else "downloading" if "local" not in kinds else "fetching"
    counts = {"done": 0, "failed": 0, "cuts": 0}
    seconds, fps = opts.seconds or ws.recipe.default_seconds, opts.fps or ws.recipe.fps
    task_opts = dataclasses.replace(opts, engine=None)
    shared = opts.engine.shared or "local" not in kinds  # downloads read nothing of the workspace

    def job(src: Source):
        path = str(ws.path(src.path)) if src.kind == "local" else None
        return data.Job((src, path), [path] if path is not None else [])

    def build(ds, _n: int):
        return data.tasks(ds, fetch_job, TASK_RETRIES, opts=task_opts, recipe=ws.recipe)

    def deliver(src: Source, got: FetchedSource) -> str:
        if got.error is not None:
            _failed(ws, res, src, got.error, got.node)
            counts["failed"] += 1
        else:
            counts["cuts"] += _store(ws, res, src, got, seconds, fps)
            counts["done"] += 1
        res.nodes[got.node] = res.nodes.get(got.node, 0) + 1
        return f"done {counts['done']} / failed {counts['failed']} ({got.node})"

    def lost(src: Source, why: str) -> str:
        _failed(ws, res, src, (why, "", "error", False), "")
        counts["failed"] += 1
        return f"done {counts['done']} / failed {counts['failed']}"

    def report(info: str) -> None:
        progress(stage, counts["done"] + counts["failed"], len(todo), info)
        if counts["cuts"]:
            progress("cutting", counts["cuts"], counts["cuts"], f"{counts['cuts']} clips cut")

    with ray_cluster(opts.engine):
        try:
            data.run(todo, job, build, deliver, lost, report, shared=shared)
        except KeyboardInterrupt:
            done = counts["done"] + counts["failed"]
            raise Interrupted(done, len(todo) - done) from None
        finally:
            if res.nodes:
                record_nodes(ws.catalog, "collect", res.nodes)


def _store(ws: Workspace, res, src: Source, got: FetchedSource, seconds: int, fps: int) -> int:
    """The driver's half of process_source: the source file, its status, each new clip file and row."""
    cat = ws.catalog
    if got.file_data is not None:
        path = ws.path("sources", got.file_name)
        if not path.exists():
            atomic_write_bytes(path, got.file_data)
    else:
        path = ws.path(src.path)
    extra = {"path": ws.stored(path), **got.extra, "fetched_at": src.fetched_at or now()}
    cat.set_source_status(src.source_id, "downloaded", None, **extra)
    new = 0
    for cid, start, w, h, n_frames, has_audio, data in got.clips:
        dst = ws.path("clips", f"{cid}.mp4")
        if cat.clip(cid) is not None and dst.exists():
            continue
        try:
            atomic_write_bytes(dst, data)
            cat.add_clip(Clip(clip_id=cid, source_id=src.source_id, start=start, seconds=seconds,
                              category=src.category, path=ws.rel(dst), fps=float(fps), width=w, height=h,
                              n_frames=n_frames, has_audio=has_audio, split=src.split_hint))
        except BaseException:
            if cat.clip(cid) is None:
                with contextlib.suppress(FileNotFoundError):
                    dst.unlink()
            raise
        new += 1
    cat.set_source_status(src.source_id, "done", None)
    cat.resolve_failure("collect", src.source_id)
    res.new_clips += new
    return new


def _failed(ws: Workspace, res, src: Source, error: tuple, node: str) -> None:
    from avsbench_tools.collect.ledger import record, source_label

    reason, detail, kind, _network = error
    permanent = kind == "rejected"
    ws.catalog.set_source_status(src.source_id, "rejected" if permanent else "failed", reason)
    payload = {"url": src.url, "source": source_label(src)}
    if node:
        payload["node"] = node
    record(ws.catalog, src.source_id, reason, detail or None, payload, permanent)
    if permanent:
        res.rejected += 1
    else:
        res.failed += 1
    res.failures.append((source_label(src), reason, permanent))


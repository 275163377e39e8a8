"""`sample` on Ray: one CPU task per clip (plain Ray tasks, `ray_tasks`: SPREAD over the nodes, retried by
Ray); the task returns the clip's file bytes, the driver writes them.

A task gets the clip's bytes (read on the driver as the task is submitted, a few tasks per CPU in
flight, sent through Ray's object store) or, with --ray-shared-workspace, its path on storage all
nodes share; it decodes once (media.decode, as the local engine) and returns the encoded frames, WAV,
log-mel and activity as bytes plus the rows' metadata. The driver writes the files (temp + rename) and
commits the clip's rows and 'done' in one transaction as each result arrives, so the outputs are the
local engine's, byte for byte, and a node that dies mid-clip leaves nothing (Ray runs its task again
elsewhere, up to TASK_RETRIES times). Plain tasks rather than a Ray Data map: the workers then need not
import Ray Data (ray_tasks says why).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.catalog import AudioRecord, Clip, Frame
from avsbench_tools.engine.cluster import Cluster, node_ip, ray_cluster
from avsbench_tools.engine.nodes import record_nodes
from avsbench_tools.engine.options import EngineOptions
from avsbench_tools.errors import Interrupted
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.progress import Progress
from avsbench_tools.workspace import Workspace

TASK_RETRIES = 3  # Ray runs a task again this many times when its worker or node dies
# what a sample task imports (imported by the workers as the run starts: ray_data.warm)
WORKER_MODULES = ("av", "numpy", "avsbench_tools.engine.ray_tasks", "avsbench_tools.engine.sample", "avsbench_tools.media.decode",
                  "avsbench_tools.sample.clip", "avsbench_tools.sample.outputs", "avsbench_tools.audio.logmel",
                  "avsbench_tools.audio.activity", "avsbench_tools.audio.wav")


@dataclass
class SampledClip:
    """What a sample task returns: encoded files by role, the rows' metadata, the node that did it."""

    clip_id: str
    node: str
    frames: list[tuple[int, int, float, int, int, bytes]] = field(default_factory=list)  # second, index, pts, w, h, data
    wav: bytes = b""
    logmel: bytes = b""
    channels: int = 0
    n_examples: int = 0
    activity: dict = field(default_factory=dict)
    error: str | None = None  # a DecodeError / SampleError: the ledger reason


def sample_bytes(data, clip: Clip, rule: str, fmt: str) -> SampledClip:
    """Sample one clip from its bytes (or a shared path) on whichever node runs this; writes nothing
    but a temporary copy of the clip, removed at the end. The same steps as sample.clip.sample_clip."""
    from avsbench_tools.audio.activity import sound_activity
    from avsbench_tools.audio.logmel import SAMPLE_RATE, int16_to_examples, pad_examples
    from avsbench_tools.audio.wav import wav_bytes
    from avsbench_tools.media.decode import DecodeError, decode_clip
    from avsbench_tools.sample.clip import SampleError, encode_image
    from avsbench_tools.sample.outputs import npy_bytes

    out = SampledClip(clip.clip_id, node_ip())
    tmp = None
    try:
        if isinstance(data, str):
            path = Path(data)
            if not path.exists():
                raise SampleError(f"clip file missing on node {out.node}: {data} (is the workspace shared?)")
        else:
            fd, tmp = tempfile.mkstemp(prefix="avs-ray-", suffix=".mp4")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            path = Path(tmp)
        seconds = int(clip.seconds)
        images: dict[int, tuple] = {}

        def sink(f) -> None:  # a re-decided second replaces the earlier frame, as locally
            images[f.second] = (f.index, f.pts, f.image.shape[1], f.image.shape[0], encode_image(f.image, fmt))

        dec = decode_clip(path, rule, seconds, sink=sink)
        if dec.pcm is None:
            raise SampleError("no audio stream")
        out.wav = wav_bytes(dec.pcm, SAMPLE_RATE)
        examples = pad_examples(int16_to_examples(dec.pcm, SAMPLE_RATE), seconds)
        out.logmel = npy_bytes(examples)
        act = sound_activity(dec.pcm, SAMPLE_RATE, seconds)
        out.frames = [(f.second, f.index, f.pts, images[f.second][2], images[f.second][3], images[f.second][4])
                      for f in dec.frames]
        info = {"n_frames": dec.n_frames, "fps": dec.fps, "vfr": dec.vfr, "rotation": dec.rotation,
                "audio_seconds": round(dec.pcm.shape[0] / SAMPLE_RATE, 4), "source_rate": dec.source_rate,
                "source_channels": dec.source_channels, "decoded_frames": dec.decoded}
        out.channels, out.n_examples = int(dec.pcm.shape[1]), int(examples.shape[0])
        out.activity = {**act.to_dict(), "info": info}
    except DecodeError as exc:
        out.error = str(exc)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return out


def write_sampled(ws: Workspace, clip: Clip, got: SampledClip, settings: dict) -> None:
    """The driver's half: write a task's files (temp + rename), then the clip's rows and 'done' in one
    transaction; a failure on the way removes what was written."""
    from avsbench_tools.audio.logmel import SAMPLE_RATE
    from avsbench_tools.sample.outputs import audio_paths, frame_path

    paths = audio_paths(ws, clip.clip_id)
    written: list[Path] = []
    try:
        frames = []
        for sec, index, pts, w, h, data in got.frames:
            dst = frame_path(ws, clip.clip_id, sec)
            written.append(dst)
            atomic_write_bytes(dst, data)
            frames.append(Frame(clip.clip_id, sec, index, pts, ws.rel(dst), w, h))
        for role, data in (("wav", got.wav), ("logmel", got.logmel)):
            written.append(paths[role])
            atomic_write_bytes(paths[role], data)
        audio = AudioRecord(clip.clip_id, ws.rel(paths["wav"]), ws.rel(paths["logmel"]), SAMPLE_RATE, got.channels,
                            got.n_examples, got.activity)
        ws.catalog.save_sample(clip.clip_id, frames, audio, settings)
    except BaseException:
        for p in written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(OSError):
            ws.path("frames", clip.clip_id).rmdir()
        raise


def sample_on_ray(ws: Workspace, todo: list[Clip], settings: dict, engine: EngineOptions, progress: Progress,
                  res) -> None:
    """Sample `todo` on Ray, filling `res` (a sample.SampleResult: sampled, failures, nodes) as results
    arrive. Ctrl-C: finished clips are recorded, the rest cancelled, Interrupted(done, left) raised."""
    with ray_cluster(engine) as cluster:
        _run(ws, todo, settings, engine, progress, res, cluster)


def sample_job(job, rule: str, fmt: str) -> SampledClip:
    """The CPU task of one clip (a Ray task): its bytes, read on the driver's node, or its shared path."""
    clip, path = job.item
    if job.error is not None:
        return SampledClip(clip.clip_id, node_ip(), error=job.error)
    return sample_bytes(job.data(path), clip, rule, fmt)


def _run(ws: Workspace, todo: list[Clip], settings: dict, engine: EngineOptions, progress: Progress, res,
         cluster: Cluster) -> None:
    from avsbench_tools.engine import ray_data as data
    from avsbench_tools.engine import ray_tasks

    warming = data.warm(cluster.nodes, WORKER_MODULES)  # noqa: F841 - held for the run
    rule, fmt = ws.recipe.sampling, ws.recipe.frame_format
    total = res.total
    n = [res.skipped]

    def job(c: Clip):
        path = str(ws.path(c.path))
        return data.Job((c, path), [path])

    def deliver(c: Clip, got: SampledClip) -> str:
        if got.error is not None:
            ws.catalog.fail("sample", c.clip_id, got.error, detail=c.path, settings=settings,
                            payload={"node": got.node})
            res.failures.append((c.clip_id, got.error))
        else:
            write_sampled(ws, c, got, settings)
            res.sampled += 1
        res.nodes[got.node] = res.nodes.get(got.node, 0) + 1
        n[0] += 1
        return f"{c.clip_id} ({got.node})"

    def lost(c: Clip, why: str) -> str:
        ws.catalog.fail("sample", c.clip_id, why, detail=c.path, settings=settings)
        res.failures.append((c.clip_id, why))
        n[0] += 1
        return f"{c.clip_id} lost"

    def report(info: str) -> None:
        progress("sampling", n[0], total, info)

    missing = [c for c in todo if not ws.path(c.path).exists()]
    for c in missing:  # as locally: a missing file is the clip's failure, not the run's
        reason = f"clip file missing: {c.path}"
        ws.catalog.fail("sample", c.clip_id, reason, detail=c.path, settings=settings)
        res.failures.append((c.clip_id, reason))
    gone = {c.clip_id for c in missing}
    todo = [c for c in todo if c.clip_id not in gone]
    try:
        ray_tasks.run(todo, job, sample_job, deliver, lost, report, cluster.cpus, shared=engine.shared,
                      retries=TASK_RETRIES, rule=rule, fmt=fmt)
    except KeyboardInterrupt:
        left = len(todo) - res.sampled - len(res.failures) + len(missing)
        raise Interrupted(res.skipped + res.sampled, left,
                          f"{len(res.failures)} failed" if res.failures else "") from None
    finally:
        if res.nodes:
            record_nodes(ws.catalog, "sample", res.nodes)

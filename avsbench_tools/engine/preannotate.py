"""`preannotate` on Ray Data: `map_batches` with a callable class, one model-holding actor per GPU (or per
CPU without GPUs), results streamed to the driver.

Each actor of the pool (`concurrency` = the cluster's GPUs / --gpus-per-worker, `num_gpus` =
--gpus-per-worker) loads the run's checkpoints once (`Models(opts)` on its own device) and proposes
masks for one clip per batch (a clip is the unit the proposal tracks through; --batch-size stays the
frames per model pass inside it, as locally). A row gets only what the clip's proposal reads: its
sampled frames (one entry per sampled second, never a row per video frame) and, for the backends
that track through the video (motion, sam3, grounded-sam's flow and SAM 2 trackers), the clip file;
CLAP also gets the WAV; read by a Ray Data map on the driver's node, or in place with
--ray-shared-workspace. grounded-sam's frames are decoded by a CPU map ahead of the actors, so
decoding the next clips overlaps inference on this one. The actor returns the ObjectMasks; the
driver gates them by audio and stores them in the clips' order (the same `_store` as the local
engine), so the catalog keeps one writer. An actor that dies (its node did) is not restarted (a
restarted actor could wait forever for the resources its living peers hold): its clips run again
in a new pass whose actors Ray places where there is room, up to ACTOR_RETRIES times.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avsbench_tools.engine.cluster import Cluster, node_ip, ray_cluster
from avsbench_tools.engine.nodes import record_nodes
from avsbench_tools.engine.sample import TASK_RETRIES
from avsbench_tools.workspace import Workspace

ACTOR_RETRIES = 3  # a clip whose actor died runs again in a new pass (new actors) this many times at most


class NodeWorkspace:
    """What the proposal backends read of a workspace (`path`, `recipe`), rooted in a scratch folder
    on the worker's node that holds the clip's inputs at their workspace-relative paths."""

    def __init__(self, root: Path, recipe):
        self.root, self.recipe = Path(root), recipe

    def path(self, *parts) -> Path:
        return self.root.joinpath(*map(str, parts))


@dataclass
class ClipJob:
    """One clip's inputs for an actor: its records and the workspace-relative files it reads under `root`
    (the driver's workspace; read there by a Ray Data map, or in place when every node shares it)."""

    clip: object
    frames: list
    audio: object
    rels: list[str]
    root: str

    def paths(self) -> list[str]:
        return [str(Path(self.root, rel)) for rel in self.rels]


@dataclass
class ClipProposal:
    clip_id: str
    node: str
    objs: list | None = None
    cap: object = None
    tags: list | None = None
    heard: list | None = None
    error: tuple[str, str] | None = None  # an OSError/ValueError (type name, text): the clip's failure


def needs_video(backend: str, tracker: str) -> bool:
    from avsbench_tools.preannotate.backends import backend_named

    return backend_named(backend).reads_video(tracker)


def job_for(ws: Workspace, inp, backend: str, opts):
    """The Job of one clip: what its proposal reads (only the sampled frames, the clip file for the backends
    that track through the video, the WAV for CLAP), read on the driver's node or in place when shared."""
    from avsbench_tools.engine.ray_data import Job

    rels = [f.path for f in inp.frames]
    if needs_video(backend, opts.tracker):
        rels.append(inp.clip.path)
    if opts.audio_tagger and inp.audio is not None:
        rels.append(inp.audio.wav_path)
    cj = ClipJob(inp.clip, inp.frames, inp.audio, rels, str(ws.root))
    return Job(cj, cj.paths())


@contextlib.contextmanager
def materialised(job, recipe):
    """A NodeWorkspace holding the job's files (a scratch folder removed after), or the shared one."""
    cj: ClipJob = job.item
    if job.files is None:
        yield NodeWorkspace(Path(cj.root), recipe)
        return
    tmp = Path(tempfile.mkdtemp(prefix="avs-ray-"))
    try:
        for rel, path in zip(cj.rels, cj.paths(), strict=True):
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(job.files[path])
        yield NodeWorkspace(tmp, recipe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_job_media(job, recipe, backend: str, opts):
    """What the backend reads ahead of a clip (grounded-sam's ClipMedia), on a CPU task (decoding ahead of the actor)."""
    from avsbench_tools.preannotate.backends import backend_named

    with materialised(job, recipe) as nws:
        return backend_named(backend).prefetch(nws, job.item.clip, job.item.frames, opts)


class ProposalActor:
    """Held by each actor of the pool: the run's models on its device; `propose(job)` -> ClipProposal."""

    def __init__(self, opts, backend: str, recipe):
        from avsbench_tools.preannotate.backends import load_models

        self.opts, self.backend, self.recipe = opts, backend, recipe
        self.models = load_models(opts)
        self.node = node_ip()

    def propose(self, job) -> ClipProposal:
        from avsbench_tools.preannotate.nms import CapStats

        out = ClipProposal(job.item.clip.clip_id, self.node, cap=CapStats())
        if job.error is not None:  # reading its inputs (or decoding them ahead) failed
            kind, _, text = job.error.partition(": ")
            out.error = (kind, text)
            return out
        try:
            with materialised(job, self.recipe) as nws:
                out.objs = self._propose(nws, job.item, job.media, out)
        except (OSError, ValueError) as exc:
            out.error = (type(exc).__name__, str(exc))
        return out

    def _propose(self, nws: NodeWorkspace, job: ClipJob, media, out: ClipProposal) -> list:
        from avsbench_tools.preannotate.backends import backend_named
        from avsbench_tools.preannotate.prompts import prompts_for

        opts, models, clip = self.opts, self.models, job.clip
        if models is not None and models.clap is not None:  # CLAP per second, as the local engine's _listen
            from avsbench_tools.audio.activity import Activity
            from avsbench_tools.audio.wav import read_wav
            from avsbench_tools.preannotate.tagger import heard

            if job.audio is None:
                raise ValueError("no sampled audio recorded (run avs-tools sample again)")
            pcm, sr = read_wav(nws.path(job.audio.wav_path))
            out.tags = models.clap.scores(pcm, sr, len(job.frames), prompts_for(nws, clip, opts.prompt))
            act = Activity.from_dict(job.audio.activity) if job.audio.activity else None
            out.heard = heard(out.tags, act.active if act else None, opts.tagger_threshold)
        return backend_named(self.backend).propose(nws, clip, job.frames, models, opts, out.heard, media, out.cap)


def propose_on_ray(ws: Workspace, inputs: list, backend: str, opts, store: Callable, progress: Callable,
                   res) -> None:
    """Propose masks for `inputs` (the stage's _ClipInputs) on Ray; `store(inp, outcome, cap) -> info`
    records each clip on the driver as its result arrives."""
    with ray_cluster(opts.engine) as cluster:
        _run(ws, inputs, backend, opts, store, progress, res, cluster)


def _run(ws, inputs, backend, opts, store, progress, res, cluster: Cluster) -> None:
    from avsbench_tools.engine import ray_data as data
    from avsbench_tools.preannotate.nms import CapStats

    gpus = gpus_per_actor(opts.engine.gpus_per_worker, str(opts.device), cluster)
    n_actors = min(max(1, int(cluster.gpus // gpus)) if gpus > 0 else cluster.cpus, max(1, len(inputs)))
    actor_opts = _for_actor(opts, gpus)
    decodes = decode_ahead(backend, gpus)
    shared = opts.engine.shared

    def build(ds, n: int):
        if decodes:  # grounded-sam's frames decoded by CPU tasks, so decoding overlaps inference
            ds = data.with_media(ds, load_job_media, TASK_RETRIES, recipe=ws.recipe, backend=backend,
                                 opts=actor_opts)
        return data.actors(ds, ProposalActor, (actor_opts, backend, ws.recipe), "propose", min(n_actors, n), gpus,
                           num_cpus=1 if gpus == 0 else 0.5, batch_size=1)

    def deliver(inp, got: ClipProposal) -> str:
        inp.tags, inp.heard = got.tags, got.heard
        # a failure is recorded as locally: "<exception type>: <text>"
        outcome = type(got.error[0], (Exception,), {})(got.error[1]) if got.error is not None else got.objs
        info = store(inp, outcome, got.cap)
        res.nodes[got.node] = res.nodes.get(got.node, 0) + 1
        return f"{info} ({got.node})"

    def lost(inp, why: str) -> str:
        return store(inp, ValueError(why), CapStats())

    def report(info: str) -> None:
        progress("preannotate", res.skipped + res.done + res.failed, res.total, info)

    try:
        data.run(inputs, lambda inp: job_for(ws, inp, backend, opts), build, deliver, lost, report, shared=shared,
                 ordered=True, passes=1 + ACTOR_RETRIES)
    finally:
        if res.nodes:
            record_nodes(ws.catalog, "preannotate", res.nodes)


def decode_ahead(backend: str, gpus: float) -> bool:
    """Whether the clips' frames are decoded by a CPU map ahead of the actors: for a backend that reads ahead
    (grounded-sam) on GPU actors (CPU actors would take the CPUs the decoding needs)."""
    from avsbench_tools.preannotate.backends import backend_named

    return backend_named(backend).prefetch is not None and gpus > 0


def gpus_per_actor(asked: float | None, device: str, cluster: Cluster) -> float:
    """--gpus-per-worker, else 1 when the device is CUDA (or auto and the cluster has GPUs), else 0 (CPU actors)."""
    from avsbench_tools.errors import UsageError

    given = f"--gpus-per-worker {asked:g}" if asked is not None else f"--device {device}"
    if asked is None:
        asked = 1.0 if device.startswith("cuda") or (device == "auto" and cluster.gpus > 0) else 0.0
    if asked > 0 and cluster.gpus < asked:
        raise UsageError(f"{given}: {cluster.describe()} has no {asked:g} GPU(s) for a model actor "
                         "(--device cpu runs the actors on CPUs)")
    return asked


def _for_actor(opts, gpus: float):
    """The options an actor loads its models with: its GPU (`cuda`: Ray sets CUDA_VISIBLE_DEVICES), or the CPU."""
    import dataclasses

    device = "cuda" if gpus > 0 else ("cpu" if opts.device == "auto" else opts.device)
    return dataclasses.replace(opts, device=device, engine=None)

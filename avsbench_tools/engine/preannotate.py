"""`preannotate` on Ray: one model-holding actor per GPU (or per CPU without GPUs), results to the driver.

Each actor loads the run's checkpoints once (`Models(opts)` on its own device) and proposes masks for
one clip per call. A call gets only what the clip's proposal reads: its sampled frames (one entry
per sampled second, never a row per video frame) and, for the backends that track through the video
(motion, sam3, grounded-sam's flow and SAM 2 trackers), the clip file; CLAP also gets the WAV. With
--ray-shared-workspace it gets the workspace path instead. grounded-sam's frames are decoded by CPU
tasks whose results Ray hands to the actor call, so decoding the next clips overlaps inference on
this one. The actor returns the ObjectMasks; the driver gates them by audio and stores them (the
same `_store` as the local engine), so the catalog keeps one writer. When an actor dies (its node did),
the clips it held go to the other actors, or to a new actor that Ray places where there is room (a
restarted actor could wait forever for the resources its living peers hold), up to ACTOR_RETRIES times.
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
from avsbench_tools.engine.stream import stream
from avsbench_tools.workspace import Workspace

IN_FLIGHT_PER_ACTOR = 2  # a call queued behind the running one: its inputs travel while the model works
ACTOR_RETRIES = 3  # a clip whose actor died is given to another actor this many times at most


class NodeWorkspace:
    """What the proposal backends read of a workspace (`path`, `recipe`), rooted in a scratch folder
    on the worker's node that holds the clip's inputs at their workspace-relative paths."""

    def __init__(self, root: Path, recipe):
        self.root, self.recipe = Path(root), recipe

    def path(self, *parts) -> Path:
        return self.root.joinpath(*map(str, parts))


@dataclass
class ClipJob:
    """One clip's inputs for an actor: its records and {relative path: bytes} (or a shared root)."""

    clip: object
    frames: list
    audio: object
    files: dict[str, bytes] | None
    shared_root: str | None = None


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


def job_for(ws: Workspace, inp, backend: str, opts, shared: bool) -> ClipJob:
    """The inputs of one clip, read by the driver (or named, when every node shares the workspace)."""
    if shared:
        return ClipJob(inp.clip, inp.frames, inp.audio, None, str(ws.root))
    rels = [f.path for f in inp.frames]
    if needs_video(backend, opts.tracker):
        rels.append(inp.clip.path)
    if opts.audio_tagger and inp.audio is not None:
        rels.append(inp.audio.wav_path)
    return ClipJob(inp.clip, inp.frames, inp.audio, {rel: ws.path(rel).read_bytes() for rel in rels})


@contextlib.contextmanager
def materialised(job: ClipJob, recipe):
    """A NodeWorkspace holding the job's files (a scratch folder removed after), or the shared one."""
    if job.shared_root is not None:
        yield NodeWorkspace(Path(job.shared_root), recipe)
        return
    tmp = Path(tempfile.mkdtemp(prefix="avs-ray-"))
    try:
        for rel, data in job.files.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
        yield NodeWorkspace(tmp, recipe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_job_media(job: ClipJob, recipe, backend: str, opts):
    """What the backend reads ahead of a clip (grounded-sam's ClipMedia), on a CPU task (decoding ahead of the actor)."""
    from avsbench_tools.preannotate.backends import backend_named

    with materialised(job, recipe) as nws:
        return backend_named(backend).prefetch(nws, job.clip, job.frames, opts)


class ProposalActor:
    """Holds the run's models on its device; `propose(job, media)` -> ClipProposal for one clip."""

    def __init__(self, opts, backend: str, recipe):
        from avsbench_tools.preannotate.backends import load_models

        self.opts, self.backend, self.recipe = opts, backend, recipe
        self.models = load_models(opts)
        self.node = node_ip()

    def propose(self, job: ClipJob, media=None) -> ClipProposal:
        from avsbench_tools.preannotate.nms import CapStats

        out = ClipProposal(job.clip.clip_id, self.node, cap=CapStats())
        try:
            with materialised(job, self.recipe) as nws:
                out.objs = self._propose(nws, job, media, out)
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
    import ray

    from avsbench_tools.preannotate.backends import backend_named
    from avsbench_tools.preannotate.nms import CapStats

    gpus = gpus_per_actor(opts.engine.gpus_per_worker, str(opts.device), cluster)
    n_actors = min(max(1, int(cluster.gpus // gpus)) if gpus > 0 else cluster.cpus, max(1, len(inputs)))
    actor_cls = ray.remote(ProposalActor).options(num_gpus=gpus, num_cpus=1 if gpus == 0 else 0.5,
                                                  max_restarts=0, max_task_retries=0)
    actor_opts = _for_actor(opts, gpus)
    actors = [actor_cls.remote(actor_opts, backend, ws.recipe) for _ in range(n_actors)]
    prefetches = backend_named(backend).prefetch is not None
    decode = ray.remote(load_job_media).options(num_cpus=1) if (prefetches and gpus > 0) else None
    busy = {i: 0 for i in range(n_actors)}
    actor_of: dict[int, int] = {}  # id(input) -> the actor its call went to

    def submit(inp):
        job = job_for(ws, inp, backend, opts, opts.engine.shared)
        media = decode.remote(job, ws.recipe, backend, actor_opts) if decode is not None else None
        i = min(busy, key=busy.get)  # the actor with the fewest calls queued (Ray places the actors)
        busy[i] += 1
        actor_of[id(inp)] = i
        return actors[i].propose.remote(job, media)

    def free(inp) -> None:
        i = actor_of.pop(id(inp), None)
        if i in busy:
            busy[i] -= 1

    tries: dict[int, int] = {}

    def resubmit(inp, exc: BaseException):
        """The clip's actor died: give it to a living actor, or to a new one (Ray places it); None: give up."""
        i = actor_of.pop(id(inp), None)
        if i in busy:
            del busy[i]  # no more calls to it
            with contextlib.suppress(Exception):
                ray.kill(actors[i])
        tries[id(inp)] = tries.get(id(inp), 0) + 1
        if tries[id(inp)] > ACTOR_RETRIES:
            return None
        if not busy:
            actors.append(actor_cls.remote(actor_opts, backend, ws.recipe))
            busy[len(actors) - 1] = 0
        return submit(inp)

    def deliver(inp, got: ClipProposal) -> str:
        free(inp)
        inp.tags, inp.heard = got.tags, got.heard
        # a failure is recorded as locally: "<exception type>: <text>"
        outcome = type(got.error[0], (Exception,), {})(got.error[1]) if got.error is not None else got.objs
        info = store(inp, outcome, got.cap)
        res.nodes[got.node] = res.nodes.get(got.node, 0) + 1
        return f"{info} ({got.node})"

    def lost(inp, exc: BaseException) -> str:
        free(inp)
        return store(inp, ValueError(f"lost on the Ray cluster: {type(exc).__name__}"), CapStats())

    def report(info: str) -> None:
        progress("preannotate", res.skipped + res.done + res.failed, res.total, info)

    try:
        stream(inputs, submit, deliver, lost, IN_FLIGHT_PER_ACTOR * n_actors, report, ordered=True,
               resubmit=resubmit)
    finally:
        if res.nodes:
            record_nodes(ws.catalog, "preannotate", res.nodes)
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a)


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

"""The Ray engine's stages as Ray Data pipelines, their results streamed back to the driver (the only writer).

A stage hands `run(items, jobs, build, deliver, lost, report)` its work items (one clip or source each)
and a `build(rows, n) -> Dataset`: `rows()` is the Ray Data input (`{"i": index, "job": pickled Job}`, one row
per block, so one task or actor call per item) whose input files are already there: read by the
driver when they are small in all (INLINE_BYTES), else read as the run streams by a Ray Data map
pinned to the driver's node (`on_driver`; either way no shared file system is needed; none of this
with --ray-shared-workspace: the workers read in place). `tasks(ds, fn)` / `actors(ds, cls)` are the stage's own map (CPU tasks, Ray spreading them over
the nodes) or `map_batches` with a callable class (a pool of model-holding actors). Ray schedules,
places, retries and restarts; this module only streams the rows (`iter_rows`) back and hands each
result to `deliver` on the driver with Ctrl-C held (an item's files and rows are written whole or
not at all).

Faults: a task whose worker or node died is run again by Ray (max_retries); an item whose task or actor
call still failed (its block errored: `DataContext.max_errored_blocks` lets the run go on) is run again
in a new pass (`passes`), then handed to `lost`. An exception raised by the stage's own function (a bug)
comes back in the row and is raised on the driver. A pass's pool actors are killed when it ends (`Roster`).
Ctrl-C: results arriving within GRACE_S are still delivered, then the execution is shut down (tasks
cancelled, actors killed) and KeyboardInterrupt raised.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsbench_tools.workspace import deferred_interrupt

INLINE_BYTES = 256 << 20  # inputs up to this size in all go in the dataset itself, read by the driver
GRACE_S = 0.8  # as the local engine: results finishing this long after Ctrl-C are still recorded
POLL_S = 0.25  # how soon the driver notices a Ctrl-C while it waits for results


@dataclass
class Job:
    """One item's work: `item` (what the stage's function gets), the files it reads (absolute paths on
    the driver's node), their bytes once read there (None: every node shares the workspace: read in place)."""

    item: Any
    read: list[str] = field(default_factory=list)
    files: dict[str, bytes] | None = None
    error: str | None = None  # reading an input failed on the driver's node: "<type>: <text>"
    media: Any = None  # what a CPU stage decoded ahead of an actor (preannotate's prefetch)

    def data(self, path: str):
        """The bytes of an input (read on the driver's node), or its path when the workspace is shared."""
        return path if self.files is None else self.files[path]


def configure(ordered: bool = False):
    """Import Ray Data and set this driver's DataContext: no progress bars or logs of its own, an
    errored block does not abort the run (the driver sees the item missing), results as they finish."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.max_errored_blocks = -1
    ctx.execution_options.preserve_order = ordered
    for name in ("ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return ray.data


def warm(nodes: dict[str, float], modules: Sequence[str]) -> list:
    """Start the run's worker processes now, one per CPU of each node, importing what the stage's tasks
    import (Ray Data, PyAV, the stage's worker module), while the driver imports Ray Data and reads the
    catalog: a start-up cost paid in parallel instead of before the first result. Ray keeps the processes
    (they are this job's idle workers) and leases them to the Ray Data tasks that follow. Returns the
    refs (nothing waits on them)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ids = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    task = ray.remote(_import)
    refs = []
    for ip, cpus in nodes.items():
        if ip in ids:
            run_there = task.options(num_cpus=0.01, max_retries=0,
                                     scheduling_strategy=NodeAffinitySchedulingStrategy(ids[ip], soft=True))
            refs += [run_there.remote(list(modules)) for _ in range(max(1, int(cpus)))]
    return refs


def _import(modules: list[str]) -> None:
    import importlib

    for m in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(m)


def rows(jobs: Sequence[tuple[int, Job]]):
    """A dataset of one row (and one block) per job: `{"i": index, "job": pickled Job}`."""
    data = configure()
    return data.from_items([{"i": i, "job": pickle.dumps(j, protocol=5)} for i, j in jobs],
                           override_num_blocks=max(1, len(jobs)))


NODE_ID_LABEL = "ray.io/node-id"  # the label Ray gives every node (its id): a label_selector pins work to a node


@contextlib.contextmanager
def _retry_bounds():
    """Where the retry bounds are passed: Ray Data 2.60's `map`/`map_batches` take a task's `max_retries`
    and an actor's `max_restarts`/`max_task_retries` only through `**ray_remote_args`, deprecated (to be
    removed in Ray 2.64) with no named parameter, compute-strategy field or DataContext setting to
    replace it in 2.60 (its named ones: num_cpus, num_gpus, memory, label_selector, fallback_strategy,
    max_calls, resources, accelerator_type, runtime_env). Without them Ray Data retries a task and
    restarts an actor forever (-1): a clip that kills its worker every time (a decoder crash) would never
    be reported lost, and a restarted GPU actor could wait forever for the GPU its living peers hold.
    So they stay, and only that deprecation warning is silenced. Placement needs no such argument: a map
    task is spread over the nodes by Ray Data's default (SPREAD for inputs under its 50 MB large-args
    threshold), and the driver-node map is pinned with the named `label_selector`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`ray_remote_args` is deprecated")
        yield


def on_driver(ds):
    """Read each job's input files on the driver's node as the run streams (a Ray Data map pinned to it by
    its node-id label, no CPU reserved, one task at a time)."""
    import ray
    import ray.data

    here = {NODE_ID_LABEL: ray.get_runtime_context().get_node_id()}
    return ds.map(read_inputs, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=1), label_selector=here)


def read_inputs(row: dict) -> dict:
    job: Job = pickle.loads(row["job"])
    read_files(job)
    return {"i": row["i"], "job": pickle.dumps(job, protocol=5)}


def read_files(job: Job) -> Job:
    """Fill `job.files` from the paths it reads (here: the driver's node); a failure is the job's error."""
    files = {}
    try:
        for p in job.read:
            files[p] = Path(p).read_bytes()
    except OSError as exc:
        job.error = f"{type(exc).__name__}: {exc}"
    job.files = files
    return job


def _inputs_size(jobs: Sequence[Job]) -> int:
    total = 0
    for j in jobs:
        for p in j.read:
            try:
                total += Path(p).stat().st_size
            except OSError:
                pass
    return total


def tasks(ds, fn: Callable, retries: int, num_cpus: float = 1, **kwargs):
    """`fn(job, **kwargs)` as CPU tasks, one per item, spread over the nodes (Ray Data's default placement
    of map tasks), each run again (up to `retries` times) when its worker or node died."""
    with _retry_bounds():
        return ds.map(apply, fn_kwargs={"fn": fn, "kwargs": kwargs}, num_cpus=num_cpus, max_retries=retries)


def apply(row: dict, fn: Callable, kwargs: dict) -> dict:
    job: Job = pickle.loads(row["job"])
    try:
        return {"i": row["i"], "out": pickle.dumps(fn(job, **kwargs), protocol=5), "crash": b""}
    except Exception as exc:  # noqa: BLE001 - the stage's function raised (a bug): the driver raises it
        return {"i": row["i"], "out": b"", "crash": portable(exc)}


def with_media(ds, fn: Callable, retries: int, **kwargs):
    """`job.media = fn(job, **kwargs)` as CPU tasks ahead of the actors (decoding overlaps inference)."""
    with _retry_bounds():
        return ds.map(attach_media, fn_kwargs={"fn": fn, "kwargs": kwargs}, num_cpus=1, max_retries=retries)


def attach_media(row: dict, fn: Callable, kwargs: dict) -> dict:
    job: Job = pickle.loads(row["job"])
    if job.error is None:
        try:
            job.media = fn(job, **kwargs)
        except (OSError, ValueError) as exc:
            job.error = f"{type(exc).__name__}: {exc}"
    return {"i": row["i"], "job": pickle.dumps(job, protocol=5)}


class Roster:
    """The pool actors of one pass (a Ray actor of no CPU on the driver's node, one per `actors` pool): each pool
    actor joins it before it loads its models; when the pass ends, `dismiss` kills every member and the roster.
    Ray Data only drops its handles to a finished pass's actors (`force=False`), and an actor it had asked for
    (to replace one whose node died) can still be placed after the pass, on a node that comes back, and hold a
    CPU or GPU for as long as the driver lives (seen in CI: one CPU of two held for minutes after the
    node-kill test; Ray issue 53124 reports a GPU held so). Such a late actor finds the roster gone and does not
    start (`Stateful`). A CLI's driver ends with its run, and its actors with it; this is for the drivers that
    stay (the Python API, a notebook, the tests), and frees a pass's GPUs for the next pass at once."""

    def __init__(self) -> None:
        self.handles: list = []

    def join(self, handle) -> None:
        self.handles.append(handle)

    def members(self) -> list:
        return list(self.handles)


_pass = threading.local()  # .rosters: those of the pass `run` is in on this thread (made by `actors` in `build`)


def _pass_rosters() -> list:
    if not hasattr(_pass, "rosters"):
        _pass.rosters = []
    return _pass.rosters


def _roster():
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    roster = ray.remote(Roster).options(num_cpus=0, max_restarts=0, scheduling_strategy=here).remote()
    _pass_rosters().append(roster)
    return roster


def dismiss(rosters: list) -> None:
    """Kill every member of `rosters` and the rosters (their pass has ended: each result is in)."""
    import ray

    for roster in rosters:
        with contextlib.suppress(Exception):
            for handle in ray.get(roster.members.remote(), timeout=5):
                with contextlib.suppress(Exception):
                    ray.kill(handle)
        with contextlib.suppress(Exception):
            ray.kill(roster)


class Stateful:
    """The callable class of `map_batches`: one per actor; it joins its pass's `roster` (a late actor, whose
    pass has ended, refuses to start), then `make(*args)` builds the stage's worker object once (it loads the
    models), whose `method(job)` is called for each item of a batch."""

    def __init__(self, make: Callable, args: tuple, method: str, roster=None):
        if roster is not None:
            import ray

            try:
                ray.get(roster.join.remote(ray.get_runtime_context().current_actor))
            except ray.exceptions.RayActorError:
                raise RuntimeError("a pool actor started after its pass ended: not started") from None
        self.obj = make(*args)
        self.method = getattr(self.obj, method)

    def __call__(self, batch: dict) -> dict:
        out, crash = [], []
        for blob in batch["job"]:
            try:
                out.append(pickle.dumps(self.method(pickle.loads(blob)), protocol=5))
                crash.append(b"")
            except Exception as exc:  # noqa: BLE001 - a bug: the driver raises it
                out.append(b"")
                crash.append(portable(exc))
        return {"i": list(batch["i"]), "out": out, "crash": crash}


def actors(ds, make: Callable, args: tuple, method: str, n: int, num_gpus: float, num_cpus: float,
           batch_size: int = 1):
    """`map_batches` with a callable class: a pool of `n` actors (each `num_gpus` of a GPU, or CPUs), each
    holding `make(*args)`. An actor that dies (its node did) is not restarted (it could wait forever for
    resources its living peers hold); its items come back missing and run again in the next pass."""
    import ray.data

    # one batch in flight per actor: the batches are spread over the actors as each is ready (Ray Data's
    # advice for even work), and a dead actor held one clip at most
    pool = ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=1)
    with _retry_bounds():
        return ds.map_batches(Stateful, fn_constructor_args=(make, args, method, _roster()), batch_size=batch_size,
                              batch_format="numpy", compute=pool, num_gpus=num_gpus or None, num_cpus=num_cpus,
                              zero_copy_batch=True, max_restarts=0, max_task_retries=0)


def portable(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc, protocol=5)
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"), protocol=5)


class Sequencer:
    """Hands results to `deliver` as they come or, `ordered`, in the items' order (a later result waits
    for the earlier ones, or for their being declared lost)."""

    def __init__(self, items: Sequence, deliver: Callable, lost: Callable, report: Callable, ordered: bool):
        self.items, self.deliver, self.lost, self.report, self.ordered = items, deliver, lost, report, ordered
        self.next = 0
        self.waiting: dict[int, tuple[str, Any]] = {}
        self.done: set[int] = set()

    def put(self, i: int, kind: str, value: Any, show: bool = True) -> None:
        if i in self.done or i in self.waiting:
            return  # a second copy of a result (never expected: Ray runs a retried task's result once)
        self.waiting[i] = (kind, value)
        if self.ordered:
            while self.next in self.waiting:
                self._give(self.next, show)
            return
        self._give(i, show)

    def skip_to_end(self, show: bool = False) -> None:
        """Deliver every waiting result, in any order (Ctrl-C: finished results are recorded)."""
        for i in sorted(self.waiting):
            self._give(i, show)

    def _give(self, i: int, show: bool) -> None:
        kind, value = self.waiting.pop(i)
        self.done.add(i)
        while self.next in self.done:
            self.next += 1
        with deferred_interrupt():
            info = self.deliver(self.items[i], value) if kind == "out" else self.lost(self.items[i], value)
        if show:
            self.report(info)


def run(items: Sequence, jobs: Callable[[Any], Job], build: Callable, deliver: Callable[[Any, Any], str],
        lost: Callable[[Any, str], str], report: Callable[[str], None], shared: bool = False, ordered: bool = False,
        passes: int = 1) -> None:
    """Run `build(ds, n)` over `items` (each made a Job by `jobs`; ds: their rows with their inputs, n: the
    items of this pass), streaming every result to `deliver(item, result)` on this thread; an item still missing after `passes` passes goes to
    `lost(item, why)`. KeyboardInterrupt: finished results recorded, execution shut down, re-raised."""
    from avsbench_tools.engine.cluster import handlers, restore

    saved = handlers()
    seq = Sequencer(items, deliver, lost, report, ordered)
    todo = list(range(len(items)))
    for _ in range(passes):
        if todo:
            batch = [(i, jobs(items[i])) for i in todo]
            inline = not shared and _inputs_size([j for _, j in batch]) <= INLINE_BYTES
            if inline:
                for _, j in batch:
                    read_files(j)
            ds = rows(batch)
            if not shared and not inline:
                ds = on_driver(ds)
            try:
                ds = build(ds, len(todo))
                _stream(ds, seq, saved, restore)
            finally:
                dismiss(_pass_rosters())
                _pass_rosters().clear()
            todo = [i for i in todo if i not in seq.done and i not in seq.waiting]
    why = f"lost on the Ray cluster ({passes} pass{'es' if passes != 1 else ''}, each with Ray's retries)"
    for i in todo:
        seq.put(i, "lost", why)
    seq.skip_to_end(show=True)


def _stream(ds, seq: Sequencer, saved: dict, restore: Callable) -> None:
    """Iterate `ds` on a helper thread (Ray Data's iterator) and deliver here, so that a Ctrl-C on this
    thread can still take what arrives within GRACE_S before the execution is shut down."""
    got: queue.Queue = queue.Queue()
    stop = threading.Event()

    def consume() -> None:
        it = iter(ds.iter_rows())
        try:
            for row in it:
                got.put(("row", row))
                if stop.is_set():
                    return
            got.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - Ray Data's own failure: raised on the driver's thread
            got.put(("error", exc))
        finally:  # Ray Data's public way to stop an execution early: close its iterator (here, on its thread)
            close = getattr(it, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    worker = threading.Thread(target=consume, name="avs-ray-results", daemon=True)
    worker.start()

    def take(kind: str, value, show: bool = True) -> bool:
        if kind == "end":
            return False
        if kind == "error":
            raise value
        if value["crash"]:
            raise pickle.loads(value["crash"])
        seq.put(int(value["i"]), "out", pickle.loads(value["out"]), show)
        restore(saved)  # Ray's core worker installs its own SIGINT handler: Ctrl-C must reach this thread
        return True

    try:
        while True:
            restore(saved)
            try:
                kind, value = got.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if not take(kind, value):
                return
    except KeyboardInterrupt:
        stop.set()
        end = time.monotonic() + GRACE_S
        try:
            while time.monotonic() < end:
                try:
                    kind, value = got.get(timeout=max(0.0, end - time.monotonic()))
                except queue.Empty:
                    break
                if kind != "row" or not take(kind, value, show=False):
                    break
            seq.skip_to_end()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            pass
        finally:
            shutdown(ds)
        raise
    except BaseException:
        stop.set()
        shutdown(ds)
        raise


def shutdown(ds) -> None:
    """Stop the dataset's execution now: its tasks cancelled, its actors killed.

    Ray Data 2.60's public way to stop an execution early is to close its row iterator (Ray Data then shuts
    its executor down, force=True), which only the thread iterating may do, and that thread is blocked
    waiting for the next result (it closes the iterator when one arrives: `_stream`); `ray.cancel` needs
    the tasks' refs, which Ray Data does not expose. So the executor the dataset holds is shut down here
    through the private `Dataset._current_executor`, as Ray Data's own blocking calls do. Without it (a
    later Ray), the run still ends everything it started, only later: the consumer closes the iterator at
    its next result, and the command's `ray.shutdown()` ends the job, whose workers and actors Ray kills."""
    executor = getattr(ds, "_current_executor", None)
    if executor is not None:
        with contextlib.suppress(Exception):
            executor.shutdown(force=True)

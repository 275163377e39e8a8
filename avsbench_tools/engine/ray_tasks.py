"""A CPU stage as plain Ray tasks (Ray Core: `ray.remote`, `ray.wait`, `ray.cancel`), its results streamed
back to the driver (the only writer): `sample`'s task per clip.

Why not Ray Data here: a Ray Data task runs in a worker that imports Ray Data (pandas, pyarrow) before
its first row, and a Ray worker belongs to one job, so every command pays that import again on every
CPU of the cluster, and once more in the driver; for a CPU task that only needs PyAV and numpy it was
most of the engine's fixed cost (benchmarks/RESULTS.md). The stages that need Ray Data's operators
(preannotate's actor pools, collect's) stay in `ray_data`.

`run(items, jobs, fn, deliver, lost, report)`: each item becomes a `ray_data.Job` (`jobs(item)`), its input
files read on the driver as the task is submitted (or read in place by the worker with a shared
workspace), at most IN_FLIGHT_PER_CPU tasks per CPU of the cluster in flight (memory stays bounded
however many items), each task `fn(job, **kwargs)` placed by Ray's SPREAD strategy and run again by Ray
(up to `retries` times) when its worker or node died. Results go to `deliver` as each finishes, with
Ctrl-C held while the driver writes one. An item whose task still failed goes to `lost`. An exception
raised by `fn` (a bug) is raised on the driver. Ctrl-C: results finishing within GRACE_S are still
delivered, the other tasks are cancelled (`ray.cancel(force=True)`: their workers are killed) and
KeyboardInterrupt is raised.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from avsbench_tools.engine.ray_data import GRACE_S, POLL_S, Job, Sequencer, portable, read_files

IN_FLIGHT_PER_CPU = 2  # tasks submitted per CPU: each CPU busy, its next input already on its way


def call(fn: Callable, job: Job, kwargs: dict) -> tuple[Any, bytes]:
    """The task: (fn's result, b"") or (None, the pickled exception fn raised)."""
    try:
        return fn(job, **kwargs), b""
    except Exception as exc:  # noqa: BLE001 - the stage's function raised (a bug): the driver raises it
        return None, portable(exc)


def run(items: Sequence, jobs: Callable[[Any], Job], fn: Callable, deliver: Callable[[Any, Any], str],
        lost: Callable[[Any, str], str], report: Callable[[str], None], cpus: int, shared: bool = False,
        retries: int = 3, num_cpus: float = 1, **kwargs) -> None:
    """Run `fn(jobs(item), **kwargs)` for every item as Ray tasks, delivering each result here as it
    finishes; see the module's text. KeyboardInterrupt: finished results recorded, the rest cancelled."""
    import ray

    from avsbench_tools.engine.cluster import handlers, restore

    saved = handlers()
    seq = Sequencer(items, deliver, lost, report, ordered=False)
    task = ray.remote(call).options(num_cpus=num_cpus, max_retries=retries, scheduling_strategy="SPREAD")
    fn_ref = ray.put(fn)
    todo = deque(range(len(items)))
    pending: dict = {}  # ObjectRef -> item index
    window = max(1, IN_FLIGHT_PER_CPU * cpus)

    def submit() -> None:
        while todo and len(pending) < window:
            i = todo.popleft()
            job = jobs(items[i])
            if not shared:
                read_files(job)
            pending[task.remote(fn_ref, job, kwargs)] = i

    def take(ref, show: bool = True) -> None:
        i = pending.pop(ref)
        try:
            out, crash = ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # not the stage's function (it is caught in `call`): Ray could not run the task at all
        except ray.exceptions.RayError as exc:  # its worker or node died more often than Ray retries
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            seq.put(i, "lost", f"lost on the Ray cluster (Ray's {retries} retries): {first}", show)
            return
        if crash:
            raise pickle.loads(crash)
        seq.put(i, "out", out, show)

    try:
        submit()
        while pending:
            restore(saved)  # Ray's core worker installs its own SIGINT handler: Ctrl-C must reach this thread
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                take(ref)
            submit()
    except KeyboardInterrupt:
        try:
            end = time.monotonic() + GRACE_S
            while pending and time.monotonic() < end:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, end - time.monotonic()))
                for ref in ready:
                    take(ref, show=False)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            pass
        finally:
            cancel(pending)
        raise
    except BaseException:
        cancel(pending)
        raise
    seq.skip_to_end(show=True)


def cancel(pending: dict) -> None:
    """Cancel the tasks still running or queued (force: their worker processes are killed)."""
    import ray

    for ref in list(pending):
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001, S112 - already finished or its node is gone: nothing to stop
            continue

"""Results streamed back to the driver as Ray tasks finish; the driver is the only writer.

`stream(items, submit, deliver, lost, window)` keeps at most `window` tasks in flight (Ray decides
where each runs and retries the ones a dead node lost), hands every finished result to `deliver`
on the calling thread with Ctrl-C held (an item's files and rows are written whole or not at all),
and `lost` gets an item whose task Ray could not finish after its retries; both return the progress
text that `report` then shows. Ctrl-C: nothing new is
submitted, results finishing within GRACE_S are still delivered, the rest are cancelled (their
workers are killed; they wrote nothing), and KeyboardInterrupt is raised again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from avsbench_tools.workspace import deferred_interrupt

GRACE_S = 0.8  # as the local engine: work in flight gets this long to finish after Ctrl-C
POLL_S = 0.25  # ray.wait's timeout: how soon a Ctrl-C is noticed


def _lost_kinds(ray) -> tuple[type, ...]:
    ex = ray.exceptions
    return tuple(getattr(ex, n) for n in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError",
                                          "OwnerDiedError", "ActorDiedError", "ActorUnavailableError",
                                          "OutOfMemoryError") if hasattr(ex, n))


def stream(items: Iterable, submit: Callable[[Any], Any], deliver: Callable[[Any, Any], str],
           lost: Callable[[Any, BaseException], str], window: int, report: Callable[[str], None],
           ordered: bool = False, resubmit: Callable[[Any, BaseException], Any] | None = None) -> None:
    """`ordered`: results are delivered in the order of `items` (the tasks still run at once, up to
    `window`): rows the driver numbers (mask versions) get the local engine's ids. After Ctrl-C every
    finished result is delivered, in any order. `resubmit(item, exc)`: for an item whose worker was lost,
    a new ref that runs it elsewhere (None: give up, `lost` records it)."""
    import ray

    from avsbench_tools.engine.cluster import handlers, restore

    saved = handlers()
    lost_kinds = _lost_kinds(ray)
    pending: dict = {}
    it = iter(items)
    more = True

    def take(ref, show: bool = True) -> None:
        item = pending[ref]
        try:
            value = ray.get(ref)
        except lost_kinds as exc:
            del pending[ref]
            again = resubmit(item, exc) if resubmit is not None else None
            if again is not None:
                pending[again] = item
                return
            with deferred_interrupt():
                info = lost(item, exc)
            if show:
                report(info)
            return
        except ray.exceptions.RayTaskError as exc:  # the worker raised: a bug, reported as the driver's own
            del pending[ref]
            raise exc.as_instanceof_cause() from None
        del pending[ref]
        with deferred_interrupt():
            info = deliver(item, value)
        restore(saved)
        if show:  # outside the held block: a Ctrl-C while the bar draws is taken at once
            report(info)

    try:
        while True:
            while more and len(pending) < window:
                item = next(it, StopIteration)
                if item is StopIteration:
                    more = False
                    break
                pending[submit(item)] = item
            if not pending:
                return
            restore(saved)
            targets = [next(iter(pending))] if ordered else list(pending)  # dicts keep submission order
            ready, _ = ray.wait(targets, num_returns=1, timeout=POLL_S)
            for ref in ready:
                take(ref)
    except KeyboardInterrupt:
        end = time.monotonic() + GRACE_S
        try:
            while pending and time.monotonic() < end:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, end - time.monotonic()))
                for ref in ready:
                    take(ref, show=False)  # recorded; the bars are done
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            pass
        finally:
            cancel(pending)
        raise
    except BaseException:
        cancel(pending)
        raise


def cancel(pending: dict) -> None:
    """Cancel the tasks still in flight (force: their worker processes are killed; they wrote nothing)."""
    import ray

    for ref in list(pending):
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - finished or already gone
            pass
    pending.clear()

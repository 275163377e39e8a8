"""Load the next clips' frames on a background thread while the models work on the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

POLL_S = 0.1  # how often a waiting side looks at the stop flag


class Prefetcher(Generic[T, R]):
    """Iterate over (item, loaded, error) in order, load(item) running up to `depth` items ahead on a
    daemon thread (`load` None: nothing is loaded, loaded is None). An exception of load(item) comes
    back as that item's error instead of its result, for the caller to raise where it handles the item.

    Leaving the with block (normally, on an error or on Ctrl-C) sets a stop flag the thread checks
    between items and while it waits on the full queue, so it ends within a load and never keeps the
    process from exiting. load must not touch the catalog (SQLite connections belong to their thread).
    """

    def __init__(self, items: Sequence[T], load: Callable[[T], R] | None, depth: int = 2):
        self.items, self.load = list(items), load
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Prefetcher[T, R]:
        if self.load is not None and self.items:
            self._thread = threading.Thread(target=self._run, name="avs-prefetch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loader thread (it finishes at most the load it is in, off the caller's time)."""
        self._stop.set()
        while True:  # unblock a put waiting on the full queue
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join(timeout=POLL_S * 2)

    def _run(self) -> None:
        for item in self.items:
            if self._stop.is_set():
                return
            try:
                got = (item, self.load(item), None)
            except Exception as exc:  # noqa: BLE001 - handed to the caller with its item
                got = (item, None, exc)
            while not self._stop.is_set():
                try:
                    self._q.put(got, timeout=POLL_S)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[tuple[T, R | None, Exception | None]]:
        if self._thread is None:
            for item in self.items:
                yield item, None, None
            return
        for _ in self.items:
            while True:
                try:
                    got = self._q.get(timeout=POLL_S)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self._q.empty():
                        raise RuntimeError("the frame loader thread stopped early") from None
            yield got

"""Work ahead on background threads: the next clips' frames are read, and the next clip proposed, while
the main thread stores the current one (prefetchers chain: one's output is the next one's input)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

POLL_S = 0.1  # how often a waiting side looks at the stop flag
_END = object()


class Prefetcher(Generic[T, R]):
    """Iterate over (item, result, error) in order, fn(item) running up to `depth` items ahead on a
    daemon thread (`fn` None: no thread, items pass through with result None). An exception of fn(item)
    comes back as that item's error, for the caller to raise where it handles the item.

    Leaving the with block (normally, on an error or on Ctrl-C) sets a stop flag the thread checks
    between items and while it waits on the full queue, so it ends within the fn call it is in and never
    keeps the process from exiting. fn must not touch the catalog (SQLite connections belong to their
    thread); `items` is consumed on the thread (it may be another Prefetcher).
    """

    def __init__(self, items: Iterable[T], fn: Callable[[T], R] | None, depth: int = 2, name: str = "avs-prefetch"):
        self.items, self.fn, self.name = items, fn, name
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Prefetcher[T, R]:
        if self.fn is not None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread (it finishes at most the call it is in, off the caller's time)."""
        self._stop.set()
        while True:  # unblock a put waiting on the full queue
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join(timeout=POLL_S * 2)

    def _put(self, got) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(got, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self.items:
                if self._stop.is_set():
                    return
                try:
                    got = (item, self.fn(item), None)
                except Exception as exc:  # noqa: BLE001 - handed to the caller with its item
                    got = (item, None, exc)
                if not self._put(got):
                    return
        except Exception as exc:  # noqa: BLE001 - the item source failed: the caller raises it
            self._put((None, None, exc, _END))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[tuple[T, R | None, Exception | None]]:
        if self._thread is None:
            for item in self.items:
                yield item, None, None
            return
        while not self._stop.is_set():
            try:
                got = self._q.get(timeout=POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._q.empty():
                    raise RuntimeError(f"{self.name}: the thread stopped early") from None
                continue
            if got is _END:
                return
            if len(got) == 4:  # the source of items raised
                raise got[2]
            yield got


class Behind:
    """Run fn(*args) on a thread one item behind the caller: the main thread runs the models on clip
    n+1 while clip n is stored. put() first waits for the item before (at most one is in flight) and
    re-raises an error it raised; wait() waits for the last one. A Ctrl-C in the main thread never
    reaches this thread, so an item it started is finished whole; the caller waits for it (a clip's
    store takes well under a second) before it reports the interruption. `done(result)` runs on the
    caller's thread when an item finishes (progress callbacks need not be thread-safe)."""

    def __init__(self, done: Callable[[object], None] | None = None, name: str = "avs-store"):
        self.done, self.name = done, name
        self._thread: threading.Thread | None = None
        self._result: list = []
        self._error: BaseException | None = None

    def put(self, fn: Callable[..., object], *args) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=self.name, daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = exc

    def wait(self) -> None:
        """Wait for the item in flight; report it (done) or raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if self._result and self.done is not None:
            self.done(self._result.pop())
        self._result.clear()

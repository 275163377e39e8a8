"""push_build.built: the import requests of a push, built in threads; each request joins the units built by the time
it is sent (up to the chunk size) and waits only for the first. No server: the build is a function under the test's
control."""

from __future__ import annotations

import json
import threading
import time

import pytest

from avsbench_tools.studio.payload import encode
from avsbench_tools.studio.push_build import built


def _gated(gates: dict[int, threading.Event], seen: list):
    def build(unit: list[int]) -> bytes:
        seen.append(unit[0])
        gates[unit[0]].wait(10)
        if unit[0] == 666:
            raise ValueError("unit 666 cannot be built")
        return encode([{"n": n} for n in unit])
    return build


def test_a_request_joins_the_units_ready_when_it_is_sent_up_to_the_limit():
    items = list(range(47))
    gates = {u: threading.Event() for u in range(0, 47, 5)}
    seen: list = []
    requests = built(items, _gated(gates, seen), limit=20, unit=5)
    it = iter(requests)
    gates[0].set()
    first, body = next(it)  # only the first unit was ready: sent alone, at once
    assert first == [0, 1, 2, 3, 4] and json.loads(body) == [{"n": n} for n in first]
    for u in (5, 10, 15, 20, 25):  # five units ready: the next request takes four (20 items, the limit)
        gates[u].set()
    deadline = time.monotonic() + 10
    while not all(f.done() for unit, f in requests._queue if unit[0] <= 25) and time.monotonic() < deadline:
        time.sleep(0.01)  # the five units built (their gates are open)
    second, body = next(it)
    assert second == list(range(5, 25)) and json.loads(body) == [{"n": n} for n in second]
    for g in gates.values():
        g.set()
    rest = [batch for batch, body in it]
    assert [n for batch in [first, second, *rest] for n in batch] == items  # every item once, in order
    assert all(len(b) <= 20 for b in rest) and len(seen) == 10  # each unit built once


def test_errors_surface_in_order_and_close_stops_the_queued_work():
    items = list(range(10)) + [666] + list(range(11, 200))
    gates = {n: threading.Event() for n in items}
    for g in gates.values():
        g.set()
    seen: list = []
    got = []
    with pytest.raises(ValueError, match="unit 666"):
        for batch, _ in built(items, _gated(gates, seen), limit=10, unit=10):
            got += batch
    assert got == list(range(10))
    late = {n: threading.Event() for n in range(0, 1000, 10)}
    seen2: list = []
    requests = built(list(range(1000)), _gated(late, seen2), limit=100, unit=10)
    requests.close()  # nothing sent: queued units never start
    for g in late.values():
        g.set()
    requests._pool.shutdown(wait=True)
    assert len(seen2) <= 2  # at most the units the two threads had started


def test_the_last_request_waits_for_every_unit_left_when_they_fit_in_it():
    """A tail request of its own costs the server ~30 ms besides its tasks: when every unit left fits in the request
    being made, it waits for them (the build runs ahead of the server) instead of sending what is done."""
    items = list(range(25))
    gates = {u: threading.Event() for u in range(0, 25, 5)}
    seen: list = []
    it = iter(built(items, _gated(gates, seen), limit=20, unit=5))
    gates[0].set()
    first, _ = next(it)  # 20 items left after it: more than fit, so only what is ready goes
    assert first == [0, 1, 2, 3, 4]
    gates[5].set()
    timer = threading.Timer(0.3, lambda: [g.set() for g in gates.values()])  # the rest built a little later
    timer.start()
    t = time.monotonic()
    second, body = next(it)
    assert second == list(range(5, 25)) and json.loads(body) == [{"n": n} for n in second]
    assert time.monotonic() - t >= 0.2  # it waited for the units still building
    assert list(it) == []  # two requests, not three
    timer.join()


def test_a_later_request_waits_for_what_leaves_whole_requests_after_it():
    """300 items, limit 100: the first request goes with what is built (the server is idle until it does); the second
    waits until it holds 90, so that 200 are left for two full requests (four requests, not 10, 30, 100, 100, 60)."""
    items = list(range(300))
    gates = {u: threading.Event() for u in range(0, 300, 10)}
    it = iter(built(items, _gated(gates, []), limit=100, unit=10))
    gates[0].set()
    first, _ = next(it)
    assert first == list(range(10))
    for u in (10, 20, 30):
        gates[u].set()
    timer = threading.Timer(0.3, lambda: [g.set() for g in gates.values()])  # the rest built a little later
    timer.start()
    t = time.monotonic()
    second, _ = next(it)
    assert 90 <= len(second) <= 100 and second == list(range(10, 10 + len(second)))  # not the 30 built when due
    assert time.monotonic() - t >= 0.2  # it waited for the units still building
    rest = [batch for batch, _ in it]
    assert len(rest) == 2 and [n for b in [first, second, *rest] for n in b] == items  # four requests in all
    timer.join()


def test_ahead_runs_once_when_a_full_request_goes_or_every_unit_is_built():
    """push lets the audio excerpts be written only then (excerpt.Writer(hold=True).release): until then the build is
    what the server waits for (the first requests are small: what is built when they are sent)."""
    items = list(range(50))
    gates = {u: threading.Event() for u in range(0, 50, 5)}
    calls: list = []
    requests = built(items, _gated(gates, []), limit=10, unit=5, ahead=lambda: calls.append(len(calls)))
    it = iter(requests)
    gates[0].set()
    first, _ = next(it)
    assert first == [0, 1, 2, 3, 4] and calls == []  # a small request: the build is behind
    for u in (5, 10):
        gates[u].set()
    deadline = time.monotonic() + 10
    while not all(f.done() for unit, f in list(requests._queue)[:2]) and time.monotonic() < deadline:
        time.sleep(0.01)
    second, _ = next(it)
    assert second == list(range(5, 15)) and calls == [0]  # a full request: ahead
    for g in gates.values():
        g.set()
    assert [n for b in [first, second, *(b for b, _ in it)] for n in b] == items and calls == [0]  # once

    small: list = []  # no request is ever full: called when the last unit is built
    few = {u: threading.Event() for u in range(0, 12, 5)}
    requests = built(list(range(12)), _gated(few, []), limit=100, unit=5, ahead=lambda: small.append(1))
    for g in few.values():
        g.set()
    deadline = time.monotonic() + 10
    while not small and time.monotonic() < deadline:
        time.sleep(0.01)
    assert small == [1]  # before anything is taken
    assert [n for b, _ in requests for n in b] == list(range(12)) and small == [1]


def test_a_held_writer_writes_nothing_until_released_and_wait_releases_it(tmp_path):
    from avsbench_tools.studio.excerpt import Writer

    done: list = []
    w = Writer(hold=True)
    for i in range(3):
        w(lambda i=i: done.append(i))
    time.sleep(0.1)
    assert done == []  # held
    w.release()
    w(lambda: done.append(3))  # after the release: written at once
    w.wait()
    assert sorted(done) == [0, 1, 2, 3]
    w.close()
    dropped = Writer(hold=True)
    dropped(lambda: done.append(4))
    dropped.close()  # Ctrl-C or an error: held writes are dropped (the next push writes what is missing) ...
    dropped.release()  # ... also when the build finishes after the close
    dropped(lambda: done.append(5))
    time.sleep(0.1)
    assert sorted(done) == [0, 1, 2, 3]
    waited = Writer(hold=True)  # nothing released it (no new task was built): wait() writes them
    waited(lambda: done.append(6))
    waited.wait()
    assert done[-1] == 6
    waited.close()

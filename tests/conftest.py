"""Shared fixtures: generated media is made once per test run (session scope) and only read by the tests
(a test that changes a world or release copies it first). Helpers are in tests/helpers (import them from
there, never from a conftest)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import REAL_METADATA

# A shell without job control starts its background jobs with SIGINT ignored, and an ignored signal is
# inherited by every child: pytest run that way (and its xdist workers, and the CLIs they start) would drop
# the SIGINTs of the Ctrl-C tests. Python's own handler is put back; children then start with SIGINT live.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n N --dist loadgroup` (make test):
    - every test that talks to the Label Studio server runs on one worker, so one server (a session fixture,
      about a minute to start) serves them all (group "studio"; the Ray tests mark their group "ray");
    - every other test module is a group of its own: its tests run on one worker, so a module-scoped fixture
      (a synthetic world, a trained run, an export) is built once, not once per worker that got one of its
      tests (plain --dist load hands tests out one by one).
    pytest-xdist (3.8) groups by renaming a test `<nodeid>@<group>` through `item._nodeid`; pytest 9 reads a
    node's id from `item._id`, so the rename is applied there after xdist's hook (without it --dist loadgroup
    silently hands out every test alone: each worker then starts its own server and cluster)."""
    for item in items:
        if "studio_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("studio"))
        elif item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(module.removeprefix("tests/").removesuffix(".py")))
    result = yield
    for item in items:
        renamed = item.__dict__.get("_nodeid")
        if renamed and hasattr(item, "_id") and str(item._id) != renamed:
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(renamed)
    return result


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small tensors: one intra-op thread is faster, and far faster on a machine shared with other jobs
    (two OpenMP threads wait on each other at every op); the previous setting is restored.
    Use with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def world_ms3(tmp_path_factory) -> Path:
    """4 clips of 5 s at 160x120 with the MS3 gold release (seed 7)."""
    from avsbench_tools.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("world") / "ms3"
    synthesize(out, SynthParams(clips=4, seconds=5, width=160, height=120, seed=7, gold="avsbench-ms3"))
    return out


@pytest.fixture(scope="session")
def world_10s(tmp_path_factory) -> Path:
    """3 clips of 10 s at 160x120 with the Ref-AVS gold release (seed 3)."""
    from avsbench_tools.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("world") / "refavs"
    synthesize(out, SynthParams(clips=3, seconds=10, width=160, height=120, seed=3, gold="ref-avs"))
    return out


@pytest.fixture(scope="session")
def gold_s4(tmp_path_factory) -> Path:
    """The gold release (world/gold) of 6 S4 clips of 5 s at 96x64 (seed 11)."""
    from avsbench_tools.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("s4") / "world"
    synthesize(out, SynthParams(clips=6, seconds=5, width=96, height=64, seed=11, gold="avsbench-s4"))
    return out / "gold"


@pytest.fixture(scope="session")
def gold_avss(tmp_path_factory) -> Path:
    """The gold release (world/gold) of 4 AVSS clips of 5 s at 96x64 (seed 5)."""
    from avsbench_tools.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("avss") / "world"
    synthesize(out, SynthParams(clips=4, seconds=5, width=96, height=64, seed=5, gold="avss"))
    return out / "gold"


@pytest.fixture(scope="session")
def real_avss_objects() -> set[str]:
    import csv

    with open(REAL_METADATA / "avss_metadata.csv", newline="") as fh:
        return {o for row in csv.DictReader(fh) for o in row["a_obj"].split("_")}


@pytest.fixture(scope="session")
def real_refavs_categories() -> set[str]:
    import csv

    cats = set()
    with open(REAL_METADATA / "ref-avs_metadata.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if not row["uid"].startswith("null"):
                cats.add(row["uid"][len(row["vid"]) + 1:].rsplit("_", 1)[0])
    return cats

"""Shared fixtures: generated media is made once per test run (session scope) and only read by the tests
(a test that changes a world or release copies it first). Helpers are in tests/helpers (import them from
there, never from a conftest)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import REAL_METADATA

# A shell without job control starts its background jobs with SIGINT ignored, and an ignored signal is
# inherited by every child: pytest run that way (and its xdist workers, and the CLIs they start) would drop
# the SIGINTs of the Ctrl-C tests. Python's own handler is put back; children then start with SIGINT live.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One OpenMP/MKL thread per process (the xdist workers and every CLI, server and Ray worker they start inherit
# it): the suite already runs one worker per core, and torch's default of one thread per core made two
# workers' four threads spin-wait on each other at every op of the tiny models. A value set by the user wins.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The local Ray clusters the stages start (and their CLIs, which inherit this) keep their session folders here, removed
# when this process ends, not in /tmp/ray (a short path: Ray's unix sockets live below it).
if "RAY_TMPDIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="avsray-t-", dir="/tmp")
    atexit.register(shutil.rmtree, os.environ["RAY_TMPDIR"], True)

#: What makes a test `slow` (make test-fast leaves these out; make test runs everything): a fixture that starts a
#: server or a cluster, or a module below whose tests train, start processes per test, or build worlds that
#: take long. tests/cli/test_every_command.py still runs every command in test-fast.
SLOW_FIXTURES = {
    "studio_server": "a Label Studio server",
    "studio_template": "Label Studio servers of its own",
    "loopback_cluster": "a two-node Ray cluster",
}
SLOW_MODULES = {
    "baselines/test_train.py": "trains TPAVI runs (tones world, resume, Ctrl-C)",
    "baselines/test_sanity_seeds.py": "trains the CPU sanity check on three seeds",
    "baselines/test_predict.py": "trains and predicts",
    "baselines/test_safety_runs.py": "trains runs to replace",
    "baselines/test_data.py": "builds worlds of the baseline tests",
    "release_check/test_release_check.py": "release-check runs (two trainings each)",
    "release/test_release.py": "four formats collected through yt-dlp, sampled, pre-annotated, exported",
    "export/test_export_safety.py": "workspaces exported again and again",
    "cli/test_interrupt.py": "stages held and interrupted, then resumed",
    "cli/test_printed_numbers.py": "baseline predict on a world",
    "collect/test_collect_world.py": "worlds of every format collected and scored",
    "preannotate/test_preannotate.py": "tiny Grounding DINO / SAM / SAM 2 / CLAP runs",
    "preannotate/test_speed_paths.py": "tiny models batched, bf16, Ctrl-C",
    "preannotate/test_sam3.py": "tiny SAM 3 runs",
    "preannotate/test_gdino_convert.py": "checkpoint conversions",
    "preannotate/test_motion_real.py": "a real clip pre-annotated",
    "publish/test_metrics_negative.py": "release-check on negative sets",
    "publish/test_negative_audio.py": "negative-audio exports",
    "publish/test_publish_load.py": "datasets.load_dataset of published folders",
    "sample/test_sample.py": "VGGish embeddings, resumable sampling",
    "preview/test_preview.py": "contact sheets of long clips",
    "cli/test_paths.py": "every command with five kinds of bad path (a CLI run each)",
    "collect/test_collect.py": "yt-dlp downloads from a loopback server",
    "release/test_evaluate_strict.py": "worlds of every format scored",
    "release/test_validate_warnings.py": "gold releases altered and validated",
    "release/test_release_clip.py": "worlds exported and compared with their gold",
    "collect/test_collect_failures.py": "downloads killed, interrupted and resumed",
    "collect/test_categories.py": "workspaces collected from folders",
    "stats/test_stats_report.py": "stats reports and figures of several releases",
    "synth/test_synth.py": "worlds rendered twice, synth killed and resumed",
    "synth/test_synth_safety.py": "synth interrupted and resumed",
    "publish/test_publish_roundtrip.py": "gold releases of every format published and read back",
    "catalog/test_move_workspace.py": "a workspace sampled and exported after a move",
    "cli/test_true_hints.py": "a world collected to check next-step lines",
    "cli/test_cli.py": "path problems of every workspace command",
    "export/test_export_reviews.py": "reviewed workspaces exported",
    "preannotate/test_nms.py": "a tiny-model run on a flood of boxes",
    "preannotate/test_preannotate_cli.py": "preannotate runs on a workspace",
}

LONGEST_FAST = "cli/test_every_command"  # make test-fast's longest test (a minute or two): started first


def _slow_reason(item) -> str | None:
    names = set(getattr(item, "fixturenames", ()))
    for fixture, why in SLOW_FIXTURES.items():
        if fixture in names:
            return why
    group = item.get_closest_marker("xdist_group")
    if group and group.args and group.args[0] in ("studio", "ray"):
        return f"the {group.args[0]} group"
    return SLOW_MODULES.get(item.nodeid.split("::", 1)[0].removeprefix("tests/"))


def pytest_configure(config):
    # the units of work are handed out in the order pytest_collection_modifyitems puts them (slow first)
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Marks the slow tests (above), and under `pytest -n N --dist loadgroup` (make test) makes the units of work:
    - every test module is a group of its own: its tests run on one worker, so a module-scoped fixture (a
      synthetic world, a trained run, an export) is built once, not once per worker that got one of its tests
      (plain --dist load hands tests out one by one); a worker that runs a Label Studio module starts one
      server for all it runs (session fixture), the Ray tests share the group "ray" (one loopback cluster);
    - the modules with slow tests go first (the long ones start early: no worker waits alone at the end).
    pytest-xdist (3.8) groups by renaming a test `<nodeid>@<group>` through `item._nodeid`; pytest 9 reads a
    node's id from `item._id`, so the rename is applied there after xdist's hook (without it --dist loadgroup
    silently hands out every test alone: each worker then starts its own server and cluster)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(module.removeprefix("tests/").removesuffix(".py")))
        if item.get_closest_marker("slow") is None and _slow_reason(item):
            item.add_marker(pytest.mark.slow)
    result = yield
    # after every other plugin: the longest fast module, then slow modules, bigger ones before smaller ones
    group = {id(it): it.get_closest_marker("xdist_group").args[0] for it in items}
    slow_groups = {group[id(it)] for it in items if it.get_closest_marker("slow")}
    size: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, it in enumerate(items):
        size[group[id(it)]] = size.get(group[id(it)], 0) + 1
        first.setdefault(group[id(it)], i)
    items.sort(key=lambda it: (group[id(it)] != LONGEST_FAST, group[id(it)] not in slow_groups, -size[group[id(it)]],
                               first[group[id(it)]]))
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

"""preannotate --engine ray: model actors on the loopback cluster give the local engine's masks, byte for byte."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from avsbench_tools.engine import EngineOptions, ray_data
from avsbench_tools.engine import preannotate as engine_preannotate
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.workspace import open_workspace
from tests.helpers import run_cli
from tests.helpers.ray_cluster import copy_ws, digest, done_ids, kill_second_when_busy
from tests.helpers.tiny_models import tiny_dino, tiny_hf_sam

torch = pytest.importorskip("torch")  # the models extra, installed by make install
CLIP = "sy011000002_0"
CLIPS = 3  # the weight-free motion backend (the one that runs without checkpoints) is about 5 s a clip here


pytestmark = pytest.mark.xdist_group("ray")  # the one loopback cluster: every Ray test on one worker


@pytest.fixture(scope="module")
def motion_local(sampled_ws, tmp_path_factory):
    """CLIPS clips proposed by the weight-free motion backend with the local engine: (ids, workspace, result)."""
    ws_dir = copy_ws(sampled_ws, tmp_path_factory.mktemp("motion") / "ws")
    ws = open_workspace(ws_dir, lock="preannotate")
    try:
        ids = sorted(c.clip_id for c in ws.catalog.clips())[:CLIPS]
        res = preannotate(ws, PreannotateOptions(backend="motion", clips=ids))
    finally:
        ws.close()
    assert res.done == CLIPS and res.masks > 0
    return ids, ws_dir, res


def _motion_on_ray(ws_dir: Path, ids: list[str], progress=None):
    """preannotate --backend motion --engine ray in this process (the session's driver)."""
    ws = open_workspace(ws_dir, lock="preannotate")
    try:
        return preannotate(ws, PreannotateOptions(backend="motion", clips=ids, engine=EngineOptions("ray")),
                           progress=progress)
    finally:
        ws.close()


def test_ray_preannotate_equals_local(on_cluster, sampled_ws, motion_local, tmp_path, monkeypatch):
    """A pool of CPU actors (Ray Data map_batches, one per CPU here: no GPU) on both nodes, the local engine's
    masks and rows byte for byte (stored in the clips' order). The inputs are read as the run streams by the
    Ray Data map pinned to the driver's node (INLINE_BYTES 0: none go in the dataset itself, as for a large
    run)."""
    monkeypatch.setattr(ray_data, "INLINE_BYTES", 0)
    ids, local, want = motion_local
    on_ray = copy_ws(sampled_ws, tmp_path / "ray")
    res = _motion_on_ray(on_ray, ids)
    assert (res.done, res.failed, res.masks) == (CLIPS, 0, want.masks)
    assert set(res.nodes) == {"127.0.0.2", "127.0.0.3"}, res.nodes  # one actor per node: both worked
    assert done_ids(on_ray, "preannotate") == ids
    assert digest(on_ray) == digest(local)
    nodes = json.loads(run_cli("status", on_ray, "--json", check=True).stdout)["nodes"]["preannotate"]["nodes"]
    assert sum(nodes.values()) == CLIPS


def _actor_call(title: str) -> bool:
    """A model actor in a call: the process title names Ray Data's map worker's `submit`."""
    return "MapWorker" in title and "submit" in title


def test_killed_node_actor_clips_run_again(on_cluster, sampled_ws, motion_local, tmp_path):
    """The second node's raylet is killed while its model actor holds a clip: the actor dies with it (not
    restarted); that clip comes back missing and runs again in a new pass (an actor Ray places on the head);
    the stage finishes, every clip once, the masks and rows the local engine's (stored in the clips' order)."""
    ids, local, want = motion_local
    on_ray = copy_ws(sampled_ws, tmp_path / "ray")
    killed: list = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_second_when_busy, args=(on_cluster, stop, killed, _actor_call), daemon=True)
    killer.start()
    try:
        res = _motion_on_ray(on_ray, ids)
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no model actor on the second node took a clip"
    assert (res.done, res.failed, res.masks) == (CLIPS, 0, want.masks)
    assert done_ids(on_ray, "preannotate") == ids
    assert digest(on_ray) == digest(local)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")])])
def test_ray_grounded_sam_actors_equal_local(on_cluster, sampled_ws, tmp_path, device, torch_one_thread, monkeypatch):
    """grounded-sam (tiny random-weight checkpoints in the real formats) in model actors, fed only the sampled
    frames (--tracker none): the local engine's masks and rows, byte for byte. Both in this process (the
    driver joins the cluster here); one torch thread locally, as Ray gives an actor that reserves one CPU
    (the same float reductions, the same scores). The frames are decoded by the CPU map ahead of the actors
    (as on GPU actors; here on CPU actors too, so that the step is run on this GPU-less machine)."""
    monkeypatch.setattr(engine_preannotate, "decode_ahead", lambda backend, gpus: True)
    d = tmp_path / "models"
    opts = PreannotateOptions(dino=str(tiny_dino(d / "dino")), sam=str(tiny_hf_sam(d / "sam")), tracker="none",
                              box_threshold=0.0, text_threshold=0.0, max_objects=2, device=device, clips=[CLIP])
    local, on_ray = copy_ws(sampled_ws, tmp_path / "local"), copy_ws(sampled_ws, tmp_path / "ray")
    results = {}
    for ws_dir, engine in ((local, None), (on_ray, EngineOptions("ray", on_cluster.address,
                                                                   gpus_per_worker=1.0 if device == "cuda" else None))):
        ws = open_workspace(ws_dir, lock="preannotate")
        try:
            results[engine is not None] = preannotate(ws, replace(opts, engine=engine))
        finally:
            ws.close()
    got = results[True]
    assert got.backend == "grounded-sam" and got.done == 1 and got.masks == results[False].masks > 0
    assert sum(got.nodes.values()) == 1 and set(got.nodes) <= {"127.0.0.2", "127.0.0.3"}
    assert done_ids(on_ray, "preannotate") == [CLIP]
    assert digest(on_ray) == digest(local)


def _alive(handle) -> bool:
    import ray

    try:
        ray.get(handle.__ray_ready__.remote(), timeout=30)
        return True
    except ray.exceptions.RayActorError:
        return False


def test_a_pass_kills_its_pool_actors_and_a_late_one_does_not_start(on_cluster, tmp_path):
    """`ray_data.Roster`: a pool actor joins its pass's roster before it builds its worker object; `dismiss` (at the
    end of each pass) kills the members, so their CPUs are free at once; an actor that Ray places after its pass
    ended (one Ray Data asked for to replace an actor whose node died) finds the roster gone and does not start:
    its models are never loaded, its CPU never held."""
    import ray

    def free_once(ok) -> float:
        """The cluster's free CPUs once `ok(free)` holds, or after 20 s (Ray's view follows an actor's start or
        death within moments)."""
        end = time.monotonic() + 20
        while not ok(free := ray.available_resources().get("CPU", 0)) and time.monotonic() < end:
            time.sleep(0.1)
        return free

    # the worker object: a copy of a file (the workers import the package, not the tests), a side effect seen here
    (tmp_path / "model").write_text("made")
    pool = ray.remote(ray_data.Stateful).options(num_cpus=1, max_restarts=0)
    roster = ray_data._roster()
    member = pool.remote(shutil.copyfile, (str(tmp_path / "model"), str(tmp_path / "member")), "upper", roster)
    assert _alive(member) and (tmp_path / "member").read_text() == "made"
    assert free_once(lambda f: f <= 1) <= 1  # it holds a CPU while its pass runs
    ray_data.dismiss([roster])
    assert free_once(lambda f: f >= 2) >= 2 and not _alive(member)
    ray_data._pass_rosters().clear()

    # its pass has ended
    late = pool.remote(shutil.copyfile, (str(tmp_path / "model"), str(tmp_path / "late")), "upper", roster)
    assert not _alive(late) and not (tmp_path / "late").exists()
    assert free_once(lambda f: f >= 2) >= 2


def test_cuda_on_a_cluster_without_gpus_is_one_line(ray_cluster, sampled_ws, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the loopback cluster has GPUs too")
    ws = copy_ws(sampled_ws, tmp_path / "ws")
    proc = run_cli("preannotate", ws, "--backend", "motion", "--engine", "ray", "--ray-address", ray_cluster.address,
                   "--gpus-per-worker", "1", "-q", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--gpus-per-worker 1" in lines[0] and ray_cluster.address in lines[0], proc.stderr
    assert done_ids(ws, "preannotate") == []

"""preannotate --engine ray: model actors on the loopback cluster give the local engine's masks, byte for byte."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from avsbench_tools.engine import EngineOptions
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import open_workspace
from tests.helpers import run_cli
from tests.helpers.ray_cluster import copy_ws, digest, done_ids
from tests.helpers.tiny_models import tiny_dino, tiny_hf_sam

torch = pytest.importorskip("torch")  # the models extra, installed by make install
CLIP = "sy011000002_0"
CLIPS = 2  # the weight-free motion backend (the one that runs without checkpoints) is about 5 s a clip here


pytestmark = pytest.mark.xdist_group("ray")  # the one loopback cluster: every Ray test on one worker


def test_ray_preannotate_equals_local(ray_cluster, collected_ws, tmp_path):
    base = copy_ws(collected_ws, tmp_path / "base")
    ws = open_workspace(base, lock="sample")
    try:
        sample(ws, SampleOptions(jobs=2))
        ids = sorted(c.clip_id for c in ws.catalog.clips())[:CLIPS]
    finally:
        ws.close()
    local, on_ray = copy_ws(base, tmp_path / "local"), copy_ws(base, tmp_path / "ray")
    ws = open_workspace(local, lock="preannotate")
    try:
        res = preannotate(ws, PreannotateOptions(backend="motion", clips=ids))
    finally:
        ws.close()
    assert res.done == CLIPS and res.masks > 0
    clip_args = [a for c in ids for a in ("--clip", c)]
    proc = run_cli("preannotate", on_ray, "--backend", "motion", *clip_args, "--engine", "ray", "--ray-address",
                   ray_cluster.address, "-q", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"preannotate (motion): {CLIPS} clips proposed ({res.masks} masks)" in proc.stdout
    assert "ray: 2 nodes: " in proc.stdout, proc.stdout  # one actor per CPU here (no GPU): both nodes work
    assert done_ids(on_ray, "preannotate") == ids
    assert digest(on_ray) == digest(local)
    nodes = json.loads(run_cli("status", on_ray, "--json", check=True).stdout)["nodes"]["preannotate"]["nodes"]
    assert sum(nodes.values()) == CLIPS


@pytest.fixture(scope="module")
def sampled_ws(collected_ws, tmp_path_factory) -> Path:
    base = copy_ws(collected_ws, tmp_path_factory.mktemp("sampled") / "ws")
    ws = open_workspace(base, lock="sample")
    try:
        sample(ws, SampleOptions(jobs=2))
    finally:
        ws.close()
    return base


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")])])
def test_ray_grounded_sam_actors_equal_local(ray_cluster, sampled_ws, tmp_path, device, torch_one_thread):
    """grounded-sam (tiny random-weight checkpoints in the real formats) in model actors, fed only the sampled
    frames (--tracker none): the local engine's masks and rows, byte for byte. Both in this process (the
    driver joins the cluster here); one torch thread locally, as Ray gives an actor that reserves one CPU
    (the same float reductions, the same scores)."""
    d = tmp_path / "models"
    opts = PreannotateOptions(dino=str(tiny_dino(d / "dino")), sam=str(tiny_hf_sam(d / "sam")), tracker="none",
                              box_threshold=0.0, text_threshold=0.0, max_objects=2, device=device, clips=[CLIP])
    local, on_ray = copy_ws(sampled_ws, tmp_path / "local"), copy_ws(sampled_ws, tmp_path / "ray")
    results = {}
    for ws_dir, engine in ((local, None), (on_ray, EngineOptions("ray", ray_cluster.address,
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

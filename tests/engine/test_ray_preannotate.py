"""preannotate --engine ray: model actors on the loopback cluster give the local engine's masks, byte for byte."""

from __future__ import annotations

import json

from conftest import run_cli

from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import open_workspace
from engine.conftest import copy_ws, digest, done_ids

CLIPS = 3  # the weight-free motion backend (the one that runs without checkpoints) is about 5 s a clip here


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
